"""Dual RL: f-DVL and XQL as one agent whose value loss is a pluggable f-conjugate.

Sikchi et al. 2024, "Dual RL: Unification and New Methods for Reinforcement and Imitation
Learning" (ICLR). Dual V-learning fits V by

    L(V) = (1 − λ)·E[V(s)] + λ·E[f*(Q̄(s,a) − V(s))]

and the actor by advantage-weighted regression on Q̄ − V. This is IQL's machinery with a
different value loss, so this module *is* ``agents.iql`` with the value loss chosen by
name; IQL itself is the ``expectile`` setting (an implicit maximiser of the same family):

    divergence   value loss on u = Q̄ − V                      hyperparameters
    chi2         −(1−λ)·mean(u) + λ·mean(max(u + u²/4, 0))      lam
    tv           −(1−λ)·mean(u) + λ·mean(max(u, 0))             lam (0.9: V at Q̄'s 89th percentile)
    rkl / xql    mean(e^z − z − 1), z = u/T (XQL, stable form)   temperature (critic: Huber)
    expectile    mean(|τ − 1[u<0]|·u²)  (IQL)                    tau

Since Q̄ is held fixed, (1 − λ)·E[V] = (1 − λ)·E[Q̄ − u] equals −(1 − λ)·E[u] up to a
constant, which is why each loss is a function of u alone.
"""
from __future__ import annotations

import dataclasses

from rlx import objectives
from rlx.agents import iql
from rlx.config import check_choice


def chi2_value_loss(u, *, lam=0.5):
    """f-DVL with Pearson χ²: (1 − λ)·E[V] + λ·E[max(u + u²/4, 0)], written in u (Q̄ fixed)."""
    return objectives.dual_value_loss(-u, u, lam=lam, conjugate=objectives.chi2_conjugate)


def tv_value_loss(u, *, lam=0.9):
    """f-DVL with total variation: (1 − λ)·E[V] + λ·E[max(u, 0)], written in u (Q̄ fixed).

    The optimum has P(Q̄ > V) = (1 − λ)/λ: V sits at that upper quantile of Q̄, so λ ≤ 0.5
    makes V a lower bound of every Q̄ (all advantages ≥ 0: behaviour cloning). λ = 0.9 puts
    V at the 89th percentile.
    """
    return objectives.dual_value_loss(-u, u, lam=lam, conjugate=objectives.tv_conjugate)


def rkl_value_loss(u, *, temperature=2.0):
    """f-DVL with reverse KL = XQL's Gumbel regression mean(e^z − z − 1), z = u/T."""
    return objectives.gumbel(u, temperature=temperature)


VALUE_LOSSES = {"chi2": chi2_value_loss, "tv": tv_value_loss, "rkl": rkl_value_loss, "xql": rkl_value_loss,
                "expectile": objectives.expectile}

Config = iql.IQLConfig
Hparams = iql.IQLHparams
HELP = iql.HELP


def make(config: iql.IQLConfig, dataset, env, env_params, divergence: str = "chi2"):
    """The dual-V agent with the value loss ``divergence`` (chi2 | tv | rkl | xql | expectile)."""
    check_choice("dual", "divergence", divergence, VALUE_LOSSES)
    if divergence in ("rkl", "xql") and config.critic_loss == "squared_error":
        config = dataclasses.replace(config, critic_loss="huber")  # XQL's critic regression
    name = "iql" if divergence == "expectile" else ("xql" if divergence in ("rkl", "xql") else f"fdvl-{divergence}")
    return iql.make(config, dataset, env, env_params, value_loss=VALUE_LOSSES[divergence], name=name)


"""Off-policy actor objectives: losses of a policy against a learned critic.

Pure ``jnp`` functions of per-sample arrays, actions drawn from the current policy with
the reparameterisation trick (so gradients reach the policy through ``log_prob`` and
``q``). Each returns a scalar loss to minimise. Temperatures and coefficients are explicit
keyword arguments: they can be vmapped, differentiated or evolved.
"""
from __future__ import annotations

import jax.numpy as jnp

from rlx.objectives.base import Array


def sac_actor(log_prob: Array, q: Array, *, alpha: Array | float) -> Array:
    """Soft actor-critic policy loss (Haarnoja et al. 2018, "Soft Actor-Critic", eq. 7).

        L = mean( α·log π(a|s) − Q(s, a) ),   a ~ π(·|s) reparameterised

    Args:
      log_prob: [B] log π_θ(a|s) of the sampled actions.
      q: [B] critic value of those actions (SAC: the minimum over twin critics).
      alpha: [] entropy temperature α ≥ 0.

    Returns:
      [] loss.
    """
    return jnp.mean(alpha * log_prob - q)


def mdpo_actor(log_prob: Array, log_prob_old: Array, q: Array, *, c: Array | float, lam: Array | float) -> Array:
    """Off-policy mirror-descent policy optimisation loss (Tomar et al. 2022, "Mirror Descent
    Policy Optimization", off-policy MDPO).

        L = mean( c·log π_θ(a|s) + (λ − c)·log π_k(a|s) − Q(s, a) ),   a ~ π_θ(·|s) reparameterised

    With c = λ + 1/t_k this is the KL step  (1/t_k)·KL(π_θ‖π_k) − λ·H(π_θ) − Q, π_k being the
    policy of the previous mirror-descent iteration; with c = λ the KL term vanishes and it is
    exactly :func:`sac_actor` with α = λ.

    Args:
      log_prob: [B] log π_θ(a|s) of the sampled actions.
      log_prob_old: [B] log π_k(a|s) of the same actions under the previous policy.
      q: [B] critic value of the actions.
      c: [] coefficient of log π_θ (entropy plus KL coefficient).
      lam: [] entropy coefficient λ.

    Returns:
      [] loss.
    """
    return jnp.mean(c * log_prob + (lam - c) * log_prob_old - q)

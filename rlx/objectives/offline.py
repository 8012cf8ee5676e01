"""Offline-RL objectives: advantage-weighted regression and behaviour-regularised actors.

Pure ``jnp`` functions of arrays; shapes are [B] unless said otherwise.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def awr_weights(advantage: Array, *, beta: Array | float = 3.0, max_weight: Array | float = 100.0) -> Array:
    """Advantage-weighted-regression weights, clipped: w = min(exp(β·A), w_max).

    Peng et al. 2019 (AWR); with β = 3 and w_max = 100 the IQL actor (Kostrikov et al. 2021).
    The weights are constants for the actor: gradients are stopped.

    Args:
      advantage: [B] advantages, e.g. Q̄(s, a) − V(s).
    Returns:
      [B] non-negative weights.
    """
    return jax.lax.stop_gradient(jnp.minimum(jnp.exp(beta * advantage), max_weight))


def awr_actor(log_prob: Array, advantage: Array, *, beta: Array | float = 3.0,
              max_weight: Array | float = 100.0) -> Array:
    """Advantage-weighted regression actor loss: −mean(min(exp(β·A), w_max) · log π(a|s)).

    Args:
      log_prob: [B] log π(a|s) of the dataset actions.
      advantage: [B] advantages of those actions.
    """
    return -jnp.mean(awr_weights(advantage, beta=beta, max_weight=max_weight) * log_prob)


def td3bc_actor(q: Array, policy_action: Array, data_action: Array, *, alpha: Array | float = 2.5) -> Array:
    """TD3+BC actor loss: −λ·mean Q(s, π(s)) + mean (π(s) − a)², λ = α / mean|Q| (Fujimoto & Gu 2021).

    λ normalises the Q term's scale; it is held constant (gradient stopped). The behaviour-cloning
    term is the mean squared error over batch *and* action dimensions, as in the paper's code.

    Args:
      q: [B] Q(s, π(s)).
      policy_action, data_action: [B, A].
    """
    lam = jax.lax.stop_gradient(alpha / jnp.mean(jnp.abs(q)))
    return -lam * jnp.mean(q) + jnp.mean((policy_action - data_action) ** 2)


def cql_penalty(q_data: Array, q_sampled: Array, *, temperature: Array | float = 1.0) -> Array:
    """Conservative Q-learning regulariser CQL(H): mean(T·logsumexp_j(Q(s, a_j)/T) − Q(s, a_data)).

    Kumar et al. 2020. ``q_sampled`` holds Q at N sampled actions per state, already
    importance-corrected by the caller (Q − log density of the sampling distribution).

    Args:
      q_data: [B] Q(s, a) at the dataset actions.
      q_sampled: [B, N] Q(s, a_j) − log μ(a_j|s) at N sampled actions.
    """
    lse = temperature * jax.nn.logsumexp(q_sampled / temperature, axis=-1)
    return jnp.mean(lse - q_data)

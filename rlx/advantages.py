"""Advantage estimation that keeps termination and truncation apart."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def gae(reward, value, next_value, terminated, truncated, *, gamma, lam):
    """Generalised advantage estimation (Schulman et al. 2016) over a rollout of T steps.

      δ_t = r_t + γ·(1 − terminated_t)·V(s'_t) − V(s_t)
      A_t = δ_t + γλ·(1 − done_t)·A_{t+1},   done_t = terminated_t ∨ truncated_t

    ``next_value[t]`` is V of the true next state s'_t, i.e. of the *final* observation when
    the episode ended at t. So a truncated step still bootstraps from V(s'_t) (the episode
    was only cut), a terminated step does not, and in both cases the trace stops so no credit
    leaks into the next episode.

    Args:
      reward, value, next_value: [T, ...] float arrays.
      terminated, truncated: [T, ...] bool arrays.
      gamma, lam: discount and GAE λ (scalars, may be traced).
    Returns:
      (advantages, returns) both [T, ...]; returns = advantages + value (the value target).
    """
    not_term = 1.0 - terminated.astype(value.dtype)
    not_done = 1.0 - jnp.logical_or(terminated, truncated).astype(value.dtype)
    delta = reward + gamma * not_term * next_value - value

    def backward(carry, x):
        d, nd = x
        adv = d + gamma * lam * nd * carry
        return adv, adv

    _, adv = jax.lax.scan(backward, jnp.zeros_like(value[0]), (delta, not_done), reverse=True)
    return adv, adv + value

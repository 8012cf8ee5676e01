"""A functional, device-resident circular replay buffer.

The buffer is a pytree of arrays plus two counters, so it lives inside a jitted training
loop and vmaps over seeds like any other state:

    buf = replay.init(capacity, example)           # example: one vector-env step, [num_envs, ...]
    buf = replay.add(buf, transitions)             # one row: num_envs transitions of one step
    batch = replay.sample(buf, key, 256)           # uniform over everything stored
    batch = replay.sample(buf, key, 256, n_step=3, gamma=0.99)

Layout: ``[rows, num_envs, ...]`` with ``rows = capacity // num_envs``. Row t holds the
transitions every parallel env made at one step, so each column is one env's stream in
time order and n-step returns follow it. When full, the oldest row is overwritten.

Terminated and truncated are stored separately, and ``next_obs`` is the *true* next
observation (the final observation of an episode that ended there, not the first of the
next one), so targets can bootstrap through truncation and never through termination.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct


class Transition(struct.PyTreeNode):
    """One env step. ``next_obs`` is the true next state (``info["final_observation"]``)."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    next_obs: jax.Array


class Batch(struct.PyTreeNode):
    """What a TD target needs: ``y = reward + discount · V(next_obs)``.

    For n-step sampling ``reward`` is the discounted sum of up to n rewards, stopping at the
    first step where an episode ended; ``next_obs`` is the true state after the last summed
    step; ``discount = γ^m · (1 − terminated)`` with m the number of summed steps, so it is 0
    exactly when the episode terminated (and never zero because of a truncation).
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    discount: jax.Array
    next_obs: jax.Array
    terminated: jax.Array
    truncated: jax.Array


class ReplayState(struct.PyTreeNode):
    data: Any  # pytree of [rows, num_envs, ...]
    pos: jax.Array  # [] int32: the row the next add writes
    size: jax.Array  # [] int32: rows holding data (≤ rows)


def init(capacity: int, example: Any) -> ReplayState:
    """An empty buffer for ``capacity`` transitions shaped like ``example``.

    Args:
      capacity: number of transitions to keep; rounded down to a multiple of num_envs.
      example: one row (e.g. a :class:`Transition`) whose leaves have a leading num_envs axis.
    """
    leaves = jax.tree.leaves(example)
    if not leaves:
        raise ValueError("replay.init: example has no arrays")
    num_envs = int(jnp.shape(leaves[0])[0])
    rows = int(capacity) // num_envs
    if rows < 1:
        raise ValueError(f"replay.init: capacity={capacity} holds no full row of {num_envs} transitions")
    data = jax.tree.map(lambda x: jnp.zeros((rows,) + jnp.shape(x), jnp.asarray(x).dtype), example)
    return ReplayState(data, jnp.int32(0), jnp.int32(0))


def rows(state: ReplayState) -> int:
    """Static number of rows (time steps) the buffer holds when full."""
    return int(jax.tree.leaves(state.data)[0].shape[0])


def add(state: ReplayState, row: Any) -> ReplayState:
    """Write one row (num_envs transitions of one step) over the oldest, circularly."""
    n = rows(state)
    data = jax.tree.map(lambda buf, x: jax.lax.dynamic_update_index_in_dim(buf, jnp.asarray(x, buf.dtype),
                                                                           state.pos, 0), state.data, row)
    return ReplayState(data, (state.pos + 1) % n, jnp.minimum(state.size + 1, n))


def sample(state: ReplayState, key, batch_size: int, *, n_step: int = 1, gamma=0.99) -> Batch:
    """Uniform sample of ``batch_size`` transitions (with replacement) as a :class:`Batch`.

    The buffer's data must be a :class:`Transition`. With ``n_step > 1`` the start row is
    drawn among rows whose next n − 1 rows are already written, and the return is

        G = Σ_{j<m} γ^j r_{t+j},   m = min(n, 1 + first j with terminated or truncated at t+j)
        discount = γ^m (1 − terminated_{t+m−1}),   next_obs = next_obs_{t+m−1}

    so a truncation cuts the sum and bootstraps from the episode's final observation, and a
    termination cuts it without bootstrapping. Sampling an empty buffer returns garbage
    (zeros); callers start sampling only after a warm-up.
    """
    d = state.data
    n = rows(state)
    num_envs = d.reward.shape[1]
    k_row, k_env = jax.random.split(key)
    valid = jnp.maximum(state.size - (n_step - 1), 1)
    oldest = (state.pos - state.size) % n
    t = (oldest + jax.random.randint(k_row, (batch_size,), 0, valid)) % n
    e = jax.random.randint(k_env, (batch_size,), 0, num_envs)
    if n_step == 1:
        term, trunc = d.terminated[t, e], d.truncated[t, e]
        return Batch(d.obs[t, e], d.action[t, e], d.reward[t, e].astype(jnp.float32),
                     gamma * (1.0 - term.astype(jnp.float32)), d.next_obs[t, e], term, trunc)

    steps = (t[:, None] + jnp.arange(n_step)[None, :]) % n  # [B, n]
    r = d.reward[steps, e[:, None]].astype(jnp.float32)
    term = d.terminated[steps, e[:, None]]
    trunc = d.truncated[steps, e[:, None]]
    ended = jnp.logical_or(term, trunc)
    # alive[j]: no episode ended strictly before step j, so step j is part of the sum.
    alive = jnp.concatenate([jnp.ones((batch_size, 1), bool),
                             jnp.cumsum(ended[:, :-1], axis=1) == 0], axis=1)
    powers = gamma ** jnp.arange(n_step, dtype=jnp.float32)
    reward = jnp.sum(jnp.where(alive, r * powers, 0.0), axis=1)
    m = alive.sum(axis=1)  # number of summed steps, 1..n
    last = jnp.take_along_axis(steps, (m - 1)[:, None], axis=1)[:, 0]
    term_last, trunc_last = d.terminated[last, e], d.truncated[last, e]
    discount = gamma ** m.astype(jnp.float32) * (1.0 - term_last.astype(jnp.float32))
    return Batch(d.obs[t, e], d.action[t, e], reward, discount, d.next_obs[last, e], term_last, trunc_last)

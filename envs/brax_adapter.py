"""Brax environments behind the gymnax 1.0 protocol.

Brax envs carry no params and report only ``done``; this adapter adds a step counter so
that hitting ``max_steps_in_episode`` is reported as *truncation* (bootstrap) and Brax's
``done`` as *termination* (no bootstrap). It does not reset: ``make`` wraps it in
:class:`AutoReset`.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces


@struct.dataclass
class BraxParams:
    max_steps_in_episode: int = 1000


@struct.dataclass
class BraxState:
    pipeline: Any
    time: jax.Array


class BraxEnv:
    """Adapter for ``brax.envs.get_environment(name, backend=...)``."""

    def __init__(self, name: str, backend: str = "positional", **kwargs):
        from brax import envs as brax_envs  # imported lazily: brax is slow to import

        self.name = name
        self._env = brax_envs.get_environment(name, backend=backend, **kwargs)

    @property
    def default_params(self) -> BraxParams:
        return BraxParams()

    def reset(self, key, params=None):
        state = self._env.reset(key)
        return state.obs, BraxState(state, jnp.int32(0))

    def step(self, key, state, action, params=None):
        params = self.default_params if params is None else params
        nxt = self._env.step(state.pipeline, action)
        # Some Brax envs (inverted_pendulum) return Python floats for reward and done: give them
        # reset's array types, so the state can be a loop carry and the reward an array.
        nxt = nxt.replace(reward=jnp.asarray(nxt.reward, jnp.float32), done=jnp.asarray(nxt.done, jnp.float32))
        time = state.time + 1
        terminated = nxt.done > 0.5
        truncated = jnp.logical_and(time >= params.max_steps_in_episode, ~terminated)
        return nxt.obs, BraxState(nxt, time), nxt.reward, terminated, truncated, {}

    def observation_space(self, params=None):
        return spaces.Box(-jnp.inf, jnp.inf, (self._env.observation_size,), jnp.float32)

    def action_space(self, params=None):
        return spaces.Box(-1.0, 1.0, (self._env.action_size,), jnp.float32)

"""What an agent needs to know about an env's observation and action spaces."""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """Static description of an env: fixes network shapes, so it is part of the static config.

    Attributes:
      obs_shape: shape of one observation.
      discrete: True for a categorical action space.
      num_actions: number of categories (discrete) or action dimensions (continuous).
      action_low, action_high: bounds of a continuous action (tuples), None when discrete.
    """

    obs_shape: tuple[int, ...]
    discrete: bool
    num_actions: int
    action_low: tuple[float, ...] | None = None
    action_high: tuple[float, ...] | None = None

    @property
    def action_dim(self) -> int:
        return self.num_actions


def spec(env, env_params) -> EnvSpec:
    """Read an :class:`EnvSpec` from any env following the gymnax protocol."""
    obs_space = env.observation_space(env_params)
    act_space = env.action_space(env_params)
    obs_shape = tuple(int(d) for d in obs_space.shape)
    if hasattr(act_space, "n"):
        return EnvSpec(obs_shape, True, int(act_space.n))
    shape = tuple(int(d) for d in act_space.shape)
    if len(shape) != 1:
        raise ValueError(f"continuous action spaces must be 1-D, got shape {shape}")
    low = np.broadcast_to(np.asarray(act_space.low, np.float32), shape)
    high = np.broadcast_to(np.asarray(act_space.high, np.float32), shape)
    return EnvSpec(obs_shape, False, shape[0], tuple(map(float, low)), tuple(map(float, high)))


def episode_limit(env_params, default: int = 1000) -> int:
    """The env's time limit (``max_steps_in_episode``), or ``default`` when it has none or it is traced."""
    try:
        return int(getattr(env_params, "max_steps_in_episode", None))
    except TypeError:  # None, or a traced value inside jit (jax's ConcretizationTypeError is a TypeError)
        return default

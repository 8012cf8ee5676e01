"""Tiny deterministic envs with known answers, for checking the env layer and bootstrapping."""
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces


@struct.dataclass
class CounterParams:
    max_steps_in_episode: int = 3
    terminal_at: int = 100  # position at which the episode terminates
    terminal_time: int = 1000  # step at which the episode terminates
    reward: float = 1.0


@struct.dataclass
class CounterState:
    pos: jnp.ndarray
    time: jnp.ndarray


class Counter:
    """obs = [position]; action 1 moves +1, action 0 stays; reward = params.reward per step.

    Terminates when the position reaches ``terminal_at`` or at step ``terminal_time``; truncates after
    ``max_steps_in_episode`` steps. It does not reset itself (wrap it in AutoReset).
    """

    def reset(self, key, params=None):
        s = CounterState(jnp.float32(0.0), jnp.int32(0))
        return jnp.array([s.pos]), s

    def step(self, key, state, action, params=None):
        params = params or CounterParams()
        pos = state.pos + jnp.asarray(action, jnp.float32)
        time = state.time + 1
        terminated = jnp.logical_or(pos >= params.terminal_at, time >= params.terminal_time)
        truncated = jnp.logical_and(time >= params.max_steps_in_episode, ~terminated)
        return jnp.array([pos]), CounterState(pos, time), jnp.float32(params.reward), terminated, truncated, {}

    @property
    def default_params(self):
        return CounterParams()

    def observation_space(self, params):
        return spaces.Box(-jnp.inf, jnp.inf, (1,), jnp.float32)

    def action_space(self, params):
        return spaces.Discrete(2)

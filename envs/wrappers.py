"""Wrappers over the gymnax 1.0 protocol.

Every wrapper keeps the protocol
  reset(key, params) -> (obs, state)
  step(key, state, action, params) -> (obs, state, reward, terminated, truncated, info)
and stores what it needs in its state, so a stack of wrappers stays a pure function that
vmaps over keys and over env params.

Order, innermost first: a gymnax env (auto-resetting itself, or ``GymnaxNoReset`` under
``AutoReset``) or the Brax adapter under ``AutoReset``; ``EpisodeStats``, ``ClipAction``/``RescaleAction``, ``VecEnv``,
``NormalizeObservation`` (it wraps the vectorised env, so all parallel envs share one set
of statistics, which the policy also uses at evaluation time).
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct


def strongly_typed(tree):
    """``tree`` with every weakly typed leaf (a Python scalar's type) made strongly typed.

    A state whose leaves change weak type between calls (gymnax's reset sets ``time=0``, one
    step returns an int32 array) is a second compile of the same ``jax.jit`` function.
    """
    def leaf(x):
        x = jnp.asarray(x)
        return jax.lax.convert_element_type(x, x.dtype) if jax.typeof(x).weak_type else x

    return jax.tree.map(leaf, tree)


class Wrapper:
    """Forwards everything it does not override to the wrapped env."""

    def __init__(self, env):
        self._env = env

    def __getattr__(self, name):
        return getattr(self._env, name)

    @property
    def unwrapped(self):
        return getattr(self._env, "unwrapped", self._env)


@struct.dataclass
class Presampled:
    """The randomness of one env step, drawn in advance: the env's own step key and a fresh reset.

    ``AutoReset.step`` takes one in place of its key (and ``VecEnv.step`` a batch of them), so
    a rollout can draw every step's randomness before its loop (``VecEnv.presample``) in a
    few large batched calls instead of several tiny hashes per step inside it.
    """

    key: jax.Array
    obs: Any  # the first observation of an episode that would start at this step
    state: Any  # ... and its state


class AutoReset(Wrapper):
    """Resets a finished episode inside ``step``.

    The returned observation is the first one of the next episode; the last observation of
    the finished episode is kept in ``info["final_observation"]``, so value targets can
    bootstrap from it when the episode was truncated (and must not when it terminated).
    The wrapped env's ``step`` must not reset by itself.

    Like gymnax's built-in auto-reset, every step draws a reset and keeps it where the
    episode ended. ``step(key)`` is exactly ``step(presample(key))``, so drawing the resets
    ahead of a rollout changes the cost, never the numbers.
    """

    @staticmethod
    def split_key(key):
        """A step's key → (the key the env steps with, the key its reset draws from)."""
        return jax.random.split(key)

    def presample(self, key, params=None) -> Presampled:
        """One step's randomness: the key the env steps with and the reset it would start from."""
        key_step, key_reset = self.split_key(key)
        obs, state = self._env.reset(key_reset, params)
        return Presampled(key_step, obs, state)

    def step(self, key, state, action, params=None):
        draw = key if isinstance(key, Presampled) else self.presample(key, params)
        obs, state, reward, terminated, truncated, info = self._env.step(draw.key, state, action, params)
        info = {**info, "final_observation": obs}
        if draw.state is None:  # no reset (``VecEnv.step_without_reset``): the env steps on from where it ended
            return obs, state, reward, terminated, truncated, info
        done = jnp.logical_or(terminated, truncated)
        pick = lambda a, b: jax.lax.select(done, a, b)
        next_state = jax.tree.map(pick, draw.state, state)
        next_obs = jax.tree.map(pick, draw.obs, obs)
        return next_obs, next_state, reward, terminated, truncated, info


class GymnaxNoReset(Wrapper):
    """A gymnax env stepped by its ``step_env``, without gymnax's built-in auto-reset.

    Put :class:`AutoReset` on top: gymnax's ``step`` splits its key into a step key and a reset
    key, runs ``step_env`` and ``reset_env`` and selects; AutoReset does the same with the same
    keys, so the numbers are gymnax's (tested), and it can take resets drawn in advance
    (``VecEnv.presample``). ``rlx.envs.make`` steps gymnax envs this way on jax 0.10: with PPO's
    resets drawn before its rollout loop and the loop's carry packed, CartPole ran faster than
    with gymnax's own step (experiments/results/ab_rollout.json).
    """

    def reset(self, key, params=None):
        return self._env.reset_env(key, self._env.default_params if params is None else params)

    def step(self, key, state, action, params=None):
        params = self._env.default_params if params is None else params
        obs, state, reward, terminated, info = self._env.step_env(key, state, action, params)
        return obs, state, reward, terminated, self._env.is_truncated(state, params), info


@struct.dataclass
class EpisodeStatsState:
    env_state: Any
    episode_return: jax.Array
    episode_length: jax.Array


class EpisodeStats(Wrapper):
    """Adds the return and length of each episode that ends at this step to ``info``.

    info["episode_done"] marks the steps that end an episode; info["episode_return"] and
    info["episode_length"] hold that episode's totals there (and 0 elsewhere).
    """

    def reset(self, key, params=None):
        obs, env_state = self._env.reset(key, params)
        # Typed as step returns it, so jit(agent.update) called on init's state and then on its
        # own output compiles once.
        return obs, EpisodeStatsState(strongly_typed(env_state), jnp.float32(0.0), jnp.int32(0))

    def step(self, key, state, action, params=None):
        obs, env_state, reward, terminated, truncated, info = self._env.step(key, state.env_state, action, params)
        done = jnp.logical_or(terminated, truncated)
        ret = state.episode_return + reward.astype(jnp.float32)
        length = state.episode_length + 1
        info = {
            **info,
            "episode_done": done,
            "episode_return": jnp.where(done, ret, 0.0),
            "episode_length": jnp.where(done, length, 0),
        }
        state = EpisodeStatsState(env_state, jnp.where(done, 0.0, ret), jnp.where(done, 0, length))
        return obs, state, reward, terminated, truncated, info


class ClipAction(Wrapper):
    """Clips a continuous action into [low, high] before the env sees it."""

    def __init__(self, env, low, high):
        super().__init__(env)
        self.low, self.high = jnp.asarray(low, jnp.float32), jnp.asarray(high, jnp.float32)

    def to_env_action(self, action):
        return jnp.clip(action, self.low, self.high)

    def step(self, key, state, action, params=None):
        return self._env.step(key, state, self.to_env_action(action), params)


class RescaleAction(Wrapper):
    """Maps an action in [−1, 1] (e.g. a tanh-Gaussian sample) affinely onto [low, high]."""

    def __init__(self, env, low, high):
        super().__init__(env)
        self.low, self.high = jnp.asarray(low, jnp.float32), jnp.asarray(high, jnp.float32)

    def to_env_action(self, action):
        return self.low + 0.5 * (jnp.clip(action, -1.0, 1.0) + 1.0) * (self.high - self.low)

    def step(self, key, state, action, params=None):
        return self._env.step(key, state, self.to_env_action(action), params)


class VecEnv(Wrapper):
    """``num_envs`` copies of an env, stepped together; one key in, all env params shared."""

    def __init__(self, env, num_envs: int):
        super().__init__(env)
        self.num_envs = int(num_envs)

    def reset(self, key, params=None):
        keys = jax.random.split(key, self.num_envs)
        return jax.vmap(self._env.reset, in_axes=(0, None))(keys, params)

    def presample(self, key, params=None, num_steps: int | None = None):
        """The randomness of ``num_steps`` steps of every env, drawn at once.

        Leaves carry leading axes [num_steps, num_envs] (just [num_envs] when ``num_steps`` is
        None); ``step(draws[t], ...)`` then takes step t's. For an env stack without
        :class:`AutoReset` (nothing to draw ahead) these are the per-env step keys.
        """
        shape = (self.num_envs,) if num_steps is None else (num_steps, self.num_envs)
        keys = jax.random.split(key, shape)
        if not hasattr(self._env, "presample"):
            return Presampled(keys, None, None)
        draw = lambda k: self._env.presample(k, params)
        for _ in shape:
            draw = jax.vmap(draw)
        return draw(keys)

    def step(self, key, state, action, params=None):
        """Step every env; ``key`` is one PRNG key, or one step of :meth:`presample`'s draws."""
        if not isinstance(key, Presampled):
            keys = jax.random.split(key, self.num_envs)
        else:
            keys = key.key if key.obs is None else key
        return jax.vmap(self._env.step, in_axes=(0, 0, 0, None))(keys, state, action, params)

    def step_without_reset(self, key, state, action, params=None):
        """``step``, except that under :class:`AutoReset` a finished episode is not reset.

        For evaluation, which counts each env's first episode only: until an env's episode ends
        its steps are ``step(key, ...)``'s, bitwise (the same step keys), but no reset is drawn,
        so the loop compiles and runs without the env's reset (a Brax reset is a whole physics
        initialisation). After its episode ends an env steps on from the last state, and what
        it returns then means nothing. A stack without AutoReset (an env resetting itself) is
        just ``step``.
        """
        if not hasattr(self._env, "presample"):
            return self.step(key, state, action, params)
        step_keys = jax.vmap(lambda k: self._env.split_key(k)[0])(jax.random.split(key, self.num_envs))
        no_reset = Presampled(step_keys, None, None)  # AutoReset: no reset drawn, none taken
        return jax.vmap(self._env.step, in_axes=(0, 0, 0, None))(no_reset, state, action, params)


@struct.dataclass
class NormalizeState:
    env_state: Any
    mean: jax.Array
    var: jax.Array
    count: jax.Array


def normalize(obs, mean, var, *, epsilon: float = 1e-8, clip: float = 10.0):
    """(obs − mean)/√(var + ε), clipped to ±clip: the map NormalizeObservation applies."""
    return jnp.clip((obs - mean) / jnp.sqrt(var + epsilon), -clip, clip)


class NormalizeObservation(Wrapper):
    """Running mean/variance observation normalisation, statistics held in the state.

    Wraps a :class:`VecEnv`: statistics are pooled over the batch of parallel envs with the
    parallel (Chan et al.) update, so every env sees the same normalisation. With
    ``update=False`` the statistics are frozen (evaluation). ``normalize`` is exposed so
    a policy can apply the same statistics elsewhere; the raw final observation of a
    finished episode is normalised too, since value targets bootstrap from it.
    """

    def __init__(self, env, update: bool = True, epsilon: float = 1e-8, clip: float = 10.0):
        super().__init__(env)
        self.update, self.epsilon, self.clip = update, epsilon, clip

    def normalize(self, obs, state: NormalizeState):
        return normalize(obs, state.mean, state.var, epsilon=self.epsilon, clip=self.clip)

    def _update(self, state: NormalizeState, obs):
        if not self.update:
            return state
        batch_mean, batch_var, n = obs.mean(0), obs.var(0), obs.shape[0]
        delta, total = batch_mean - state.mean, state.count + n
        mean = state.mean + delta * n / total
        m2 = state.var * state.count + batch_var * n + delta**2 * state.count * n / total
        return state.replace(mean=mean, var=m2 / total, count=total)

    def reset(self, key, params=None):
        obs, env_state = self._env.reset(key, params)
        shape = obs.shape[1:]
        state = NormalizeState(env_state, jnp.zeros(shape), jnp.ones(shape), jnp.float32(1e-4))
        state = self._update(state, obs)
        return self.normalize(obs, state), state

    def step(self, key, state, action, params=None):
        obs, env_state, reward, terminated, truncated, info = self._env.step(key, state.env_state, action, params)
        state = self._update(state.replace(env_state=env_state), obs)
        if "final_observation" in info:
            info = {**info, "final_observation": self.normalize(info["final_observation"], state)}
        return self.normalize(obs, state), state, reward, terminated, truncated, info


def with_statistics(dst, src):
    """``dst`` (a NormalizeState, or anything else) with the normalisation statistics of ``src``."""
    if isinstance(dst, NormalizeState) and isinstance(src, NormalizeState):
        return dst.replace(mean=src.mean, var=src.var, count=src.count)
    return dst

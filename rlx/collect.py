"""Make offline datasets with rlx's own agents (this machine cannot download D4RL or Minari).

    ds = collect.rollouts(agent, agent.policy(state), key, num_steps=100_000)
    ds = collect.random(env, env_params, key, num_steps=100_000)

Everything is a pure function of the key, so a dataset is reproduced exactly from its seed.
Actions are stored in the env's own units (what the env received after the agent's
action wrapper), observations raw.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rlx import data, envs


def _steps(vec_env, policy_fn, key, env_params, num_steps: int, num_envs: int):
    key, k_reset = jax.random.split(key)
    obs, env_state = vec_env.reset(k_reset, env_params)

    def step(carry, key):
        obs, env_state = carry
        k_act, k_env = jax.random.split(key)
        action = policy_fn(obs, jax.random.split(k_act, num_envs))
        next_obs, env_state, reward, term, trunc, info = vec_env.step(k_env, env_state, action, env_params)
        return (next_obs, env_state), (obs, action, reward, info["final_observation"], term, trunc)

    _, out = jax.lax.scan(step, (obs, env_state), jax.random.split(key, -(-num_steps // num_envs)))
    # [T, E, ...] → [E·T, ...] env by env, so each env's episodes stay contiguous.
    return [jnp.swapaxes(x, 0, 1).reshape((-1,) + x.shape[2:])[:num_steps] for x in out]


def rollouts(agent, policy, key, *, num_steps: int, num_envs: int = 8, deterministic: bool = False,
             env_params=None, metadata: data.Metadata | None = None) -> data.Dataset:
    """``num_steps`` transitions of ``agent.act(policy, ...)`` in the agent's evaluation env."""
    env_params = agent.env_params if env_params is None else env_params
    # Step the env below the agent's action wrapper, handing it env-unit actions, so the
    # dataset records exactly what the env received.
    to_env = getattr(agent.eval_env, "to_env_action", None)
    base = agent.eval_env._env if to_env else agent.eval_env
    to_env = to_env or (lambda a: a)
    act = jax.vmap(lambda o, k: to_env(agent.act(policy, o, k, deterministic)))
    out = jax.jit(lambda k: _steps(envs.VecEnv(base, num_envs), act, k, env_params, num_steps, num_envs))(key)
    obs, action, reward, next_obs, term, trunc = [np.asarray(x) for x in out]
    return data.from_arrays(obs, action, reward, next_obs, term, _close_episodes(term, trunc, num_envs),
                            metadata or data.Metadata())


def random(env, env_params, key, *, num_steps: int, num_envs: int = 8,
           metadata: data.Metadata | None = None) -> data.Dataset:
    """``num_steps`` transitions of uniformly random actions."""
    space = env.action_space(env_params)
    sample = jax.vmap(lambda o, k: space.sample(k))
    out = jax.jit(lambda k: _steps(envs.VecEnv(env, num_envs), sample, k, env_params, num_steps, num_envs))(key)
    obs, action, reward, next_obs, term, trunc = [np.asarray(x) for x in out]
    return data.from_arrays(obs, action, reward, next_obs, term, _close_episodes(term, trunc, num_envs),
                            metadata or data.Metadata())


def _close_episodes(term, trunc, num_envs):
    """Mark the last step of each env's stream as truncated: its episode is cut by the budget."""
    trunc = np.array(trunc, bool)
    n = len(trunc)
    per_env = -(-n // num_envs)
    for end in range(per_env - 1, n, per_env):
        trunc[end] = trunc[end] or not term[end]
    trunc[-1] = trunc[-1] or not term[-1]
    return trunc

"""The run loop, written once for every agent: ``make_train(agent) -> train(key, hp)``.

``train`` is a pure function, so seeds × hyperparameters × env variants are one program:

    train = rlx.make_train(agent, eval_every=50)
    state, metrics = jax.jit(jax.vmap(train))(jax.random.split(key, 8), hp_batch)

It is one scan over iterations; every ``eval_every`` iterations the policy is evaluated
deterministically and a progress callback may report to the host (once per evaluation,
never per step).
"""
from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp

from rlx import envs
from rlx.agent import Agent


def evaluate(agent: Agent, policy, key, env_params=None, *, num_episodes: int = 8, max_steps: Optional[int] = None,
             deterministic: bool = True):
    """Mean return of ``num_episodes`` episodes run in parallel, one episode each.

    Runs ``max_steps`` steps (default: the env's episode limit); an env's first finished
    episode counts. Returns ``(mean_return, per_episode_returns [num_episodes])``.
    """
    env_params = agent.env_params if env_params is None else env_params
    max_steps = max_steps or _episode_limit(agent.env_params)
    vec = envs.VecEnv(agent.eval_env, num_episodes)
    key, k_reset = jax.random.split(key)
    obs, env_state = vec.reset(k_reset, env_params)
    act = jax.vmap(agent.act, in_axes=(None, 0, 0, None))

    def step(carry, key):
        obs, env_state, done_once, returns = carry
        k_act, k_env = jax.random.split(key)
        action = act(policy, obs, jax.random.split(k_act, num_episodes), deterministic)
        obs, env_state, reward, _, _, info = vec.step(k_env, env_state, action, env_params)
        returns = jnp.where(done_once, returns, returns + reward)
        done_once = jnp.logical_or(done_once, info["episode_done"])
        return (obs, env_state, done_once, returns), None

    init = (obs, env_state, jnp.zeros(num_episodes, bool), jnp.zeros(num_episodes, jnp.float32))
    (_, _, _, returns), _ = jax.lax.scan(step, init, jax.random.split(key, max_steps))
    return returns.mean(), returns


def _episode_limit(env_params) -> int:
    limit = getattr(env_params, "max_steps_in_episode", None)
    try:
        return int(limit)
    except (TypeError, jax.errors.ConcretizationTypeError):
        return 1000


def make_train(agent: Agent, num_iterations: Optional[int] = None, *, eval_every: Optional[int] = None,
               eval_episodes: int = 8, progress: Optional[Callable] = None):
    """Build ``train(key, hp, env_params=None) -> (state, metrics)``.

    Args:
      agent: any :class:`rlx.agent.Agent`.
      num_iterations: iterations to run (default: the agent's configured horizon).
      eval_every: iterations between deterministic evaluations (default: 10 evaluations per
        run); there is always one after the last iteration.
      eval_episodes: episodes per evaluation.
      progress: optional host function ``progress(iterations_done)``, called after every
        evaluation through ``jax.debug.callback``.
    Returns:
      ``train``. Its metrics hold every per-iteration metric of ``agent.update`` with a
      leading [num_iterations] axis, plus "eval/return" [num_evals] and "eval/iteration".
    """
    n = agent.num_iterations if num_iterations is None else int(num_iterations)
    if n <= 0:
        raise ValueError(f"num_iterations must be positive, got {n}")
    k = max(1, n // 10) if eval_every is None else int(eval_every)
    if k <= 0:
        raise ValueError(f"eval_every must be a positive integer, got {eval_every}")
    eval_at = sorted({i for i in range(k, n + 1, k)} | {n})  # 1-based iterations after which we evaluate
    is_eval = jnp.zeros(n + 1, bool).at[jnp.array(eval_at)].set(True)

    def train(key, hp, env_params=None):
        key, k_init, k_eval = jax.random.split(key, 3)
        state = agent.init(k_init, hp, env_params)
        eval_keys = jax.random.split(k_eval, n)

        def iteration(state, i):
            state, metrics = agent.update(state, hp)
            # The predicate depends on the scan counter only, never on per-run data, so under
            # vmap this stays a real branch: evaluation costs nothing on other iterations.
            def run_eval(state):
                ret, _ = evaluate(agent, agent.policy(state), eval_keys[i], getattr(state, "env_params", env_params),
                                  num_episodes=eval_episodes)
                if progress is not None:
                    jax.debug.callback(progress, i + 1)
                return ret

            ret = jax.lax.cond(is_eval[i + 1], run_eval, lambda _: jnp.float32(jnp.nan), state)
            return state, (metrics, ret)

        state, (metrics, rets) = jax.lax.scan(iteration, state, jnp.arange(n))
        idx = jnp.array(eval_at) - 1
        return state, {**metrics, "eval/return": rets[idx], "eval/iteration": jnp.array(eval_at, jnp.int32)}

    return train



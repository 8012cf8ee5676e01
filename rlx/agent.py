"""The one agent interface that online and offline agents share.

An agent is a handful of pure functions built from a *static* config (shapes, counts,
network sizes: whatever forces a recompile) and driven by a *dynamic* hyperparameter
pytree ``hp`` (learning rates, discount, clip range, the objective's own parameters...):

    agent = ppo.make(config, env, env_params, objective="ppo_clip")
    hp = agent.default_hparams()                   # pytree of arrays
    state = agent.init(key, hp)                    # or agent.init(key, hp, env_params)
    state, metrics = agent.update(state, hp)       # one iteration
    action = agent.act(agent.policy(state), obs, key, deterministic=True)
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

from rlx.envs import EnvSpec


@dataclasses.dataclass(frozen=True)
class Agent:
    """What every agent exposes. Only ``update`` knows whether data come from an env or a dataset.

    Attributes:
      name: agent family, e.g. "ppo".
      config: the static config dataclass.
      env, env_params: the training env (gymnax protocol) and its default params.
      spec: the env's static spaces.
      init: ``(key, hp, env_params=None) -> state``; env_params default to ``env_params``.
      update: ``(state, hp) -> (state, metrics)``, one iteration; metrics is a flat dict of scalars.
      policy: ``state -> policy``, everything ``act`` needs (weights, observation statistics).
      act: ``(policy, obs, key, deterministic=False) -> action`` on one raw env observation.
      default_hparams: ``() -> hp`` pytree of float32 arrays.
      num_iterations: iterations in a full run of the configured length (the schedule horizon).
      steps_per_iteration: env steps (online) or gradient steps (offline) per ``update``.
      eval_env: the env stack a policy is evaluated in (raw observations, action wrappers).
      update_at: optional ``(state, hp, iteration) -> (state, metrics)``: ``update`` told the
        iteration index, a scalar shared by every run of a batch (the run loop's counter). Under
        ``vmap`` a counter kept in the state is per-run data, so a branch on it (the warm-up's
        loop of zero trips, a delayed actor update's ``lax.cond``) turns into masked work that is
        computed anyway; on the shared index it stays a real branch.
        ``update_at(s, hp, s.iteration)`` equals ``update(s, hp)``.
      parts: how many devices one run can keep busy: the independent parts its update hands to
        :func:`rlx.parallel.spread` (PPO's actor and critic: 2). A single run is spread over that
        many devices when there are more than one (``rlx train`` makes one per CPU core).
    """

    name: str
    config: Any
    env: Any
    env_params: Any
    spec: EnvSpec
    init: Callable
    update: Callable
    policy: Callable
    act: Callable
    default_hparams: Callable
    num_iterations: int
    steps_per_iteration: int
    eval_env: Any
    update_at: Callable | None = None
    parts: int = 1

    def step(self, state, hp, iteration):
        """One iteration at ``iteration`` (shared by every run): ``update_at`` if there is one."""
        return self.update(state, hp) if self.update_at is None else self.update_at(state, hp, iteration)

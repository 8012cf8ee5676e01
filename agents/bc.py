"""Behaviour cloning: maximum likelihood of the dataset's actions, the imitation baseline.

    L(θ) = −mean_{(s,a)∼D} log π_θ(a|s),     π_θ(·|s) = N(tanh μ_θ(s), σ²)

The policy is IQL's actor (tanh-bounded mean, state-independent σ), so BC and the
offline agents that use advantage-weighted regression (IQL, ReCOIL) differ only in the
weights of the same log-likelihood: BC weighs every transition equally. Rewards are
never read. One ``update`` is ``steps_per_iteration`` gradient steps in a ``lax.scan``;
the learning rate is applied by hand (cosine-decayed like IQL's actor), so it stays a
dynamic hyperparameter.

    agent = bc.make(bc.BCConfig(), ds, *rlx.envs.make("Pendulum-v1"))
    state, metrics = jax.jit(rlx.make_train(agent))(key, agent.default_hparams())
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from rlx import data, envs
from rlx.agent import Agent
from rlx.agents.iql import GaussianActor, Policy, gaussian_act, gaussian_log_prob
from rlx.config import check_offline


@dataclasses.dataclass(frozen=True)
class BCConfig:
    """Static settings."""

    total_steps: int = 100_000  # gradient steps per run
    steps_per_iteration: int = 1_000
    batch_size: int = 256
    hidden: tuple[int, ...] = (256, 256)
    normalize_obs: bool = True  # standardise observations by the dataset's statistics


@struct.dataclass
class BCHparams:
    lr: jax.Array


@struct.dataclass
class BCState:
    params: Any  # the actor's
    opt_state: Any
    key: jax.Array
    iteration: jax.Array


def validate(config: BCConfig, spec: envs.EnvSpec) -> None:
    """Every check that can be made before compiling; errors name the field and what it accepts."""
    check_offline(config, BCConfig, spec, agent="BC")


def default_hparams() -> BCHparams:
    return BCHparams(lr=jnp.asarray(3e-4, jnp.float32))


def make(config: BCConfig, dataset: data.Dataset, env, env_params, name: str = "bc") -> Agent:
    """Behaviour cloning on ``dataset`` (actions mapped to [−1, 1] by the env's bounds)."""
    spec = envs.spec(env, env_params)
    validate(config, spec)
    prep = data.prepare(dataset, env, env_params, normalize_obs=config.normalize_obs)
    ds, obs_mean, obs_std = prep.data, prep.obs_mean, prep.obs_std
    actor = GaussianActor(spec.num_actions, config.hidden)
    adam = optax.adam(1.0)  # the learning rate is applied by hand: a dynamic hyperparameter

    def init(key, hp: BCHparams, env_params_=None) -> BCState:
        k_a, key = jax.random.split(key)
        params = actor.init(k_a, ds.obs[:1])
        return BCState(params, adam.init(params), key, jnp.int32(0))

    def loss(params, batch):
        mean, log_std = actor.apply(params, batch.obs)
        nll = -jnp.mean(gaussian_log_prob(mean, log_std, batch.action))
        return nll, {"loss/actor": nll, "mse": jnp.mean(jnp.sum((mean - batch.action) ** 2, -1)),
                     "log_std": jnp.mean(log_std)}

    def grad_step(carry, key):
        params, opt_state, step, hp = carry
        grads, metrics = jax.grad(loss, has_aux=True)(params, ds.sample(key, config.batch_size))
        updates, opt_state = adam.update(grads, opt_state)
        progress = step.astype(jnp.float32) / config.total_steps
        lr = hp.lr * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
        params = jax.tree.map(lambda p, u: p + lr * u, params, updates)
        return (params, opt_state, step + 1, hp), metrics

    def update(state: BCState, hp: BCHparams):
        key, k_steps = jax.random.split(state.key)
        carry = (state.params, state.opt_state, state.iteration * config.steps_per_iteration, hp)
        (params, opt_state, _, _), metrics = jax.lax.scan(
            grad_step, carry, jax.random.split(k_steps, config.steps_per_iteration))
        return BCState(params, opt_state, key, state.iteration + 1), jax.tree.map(jnp.mean, metrics)

    def policy(state: BCState) -> Policy:
        return Policy(state.params, obs_mean, obs_std)

    act = gaussian_act(actor)

    eval_env = envs.RescaleAction(env, prep.action_low, prep.action_high)
    return Agent(name=name, config=config, env=env, env_params=env_params, spec=spec, init=init, update=update,
                 policy=policy, act=act, default_hparams=default_hparams,
                 num_iterations=config.total_steps // config.steps_per_iteration,
                 steps_per_iteration=config.steps_per_iteration, eval_env=eval_env)


Config = BCConfig
Hparams = BCHparams
HELP = {
    "total_steps": "gradient steps per run",
    "steps_per_iteration": "gradient steps per update call (the evaluation granularity)",
    "batch_size": "transitions per gradient step",
    "hidden": "hidden layer widths of the policy",
    "normalize_obs": "standardise observations by the dataset's mean and std",
    "lr": "Adam learning rate, cosine-decayed to 0 over the run",
}

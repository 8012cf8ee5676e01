"""Implicit Q-learning: offline RL without ever querying actions outside the dataset.

Kostrikov et al. 2021, "Offline Reinforcement Learning with Implicit Q-Learning". One
``update`` is ``steps_per_iteration`` gradient steps in a ``lax.scan``, each on a fresh
uniform batch of the dataset. Each step computes IQL's three losses from the same
parameters and applies them together (they touch disjoint parameters; the paper applies
them in the order V → actor → Q, a one-step difference in which V the others see):

    V       expectile(min_i Q̄_i(s,a) − V(s); τ)                         τ = 0.7
    actor   −mean(min(exp(β·(min_i Q̄_i(s,a) − V(s))), 100) · log π(a|s))   β = 3, lr cosine-decayed
    Q       Σ_i mean((Q_i(s,a) − (r + γ(1 − terminated)·V(s')))²)        (or Huber: critic_loss)
    targets Q̄ ← Q̄ + τ_polyak (Q − Q̄)

The value loss is pluggable (``value_loss=``): any ``fn(u, **hp.value) -> scalar`` on
u = Q̄ − V, so the dual-RL value objectives slot in here.

The dataset lives in the agent (a constant of the program, shared by every vmapped run).
Actions are mapped to [−1, 1] by the env's bounds; evaluation rescales them back.

    ds = rlx.data.load("pendulum-medium.npz")
    agent = iql.make(iql.IQLConfig(), ds, *rlx.envs.make("Pendulum-v1"))
    state, metrics = jax.jit(jax.vmap(rlx.make_train(agent), in_axes=(0, None)))(keys, agent.default_hparams())
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from rlx import critics, data, envs, nets, objectives
from rlx.agent import Agent
from rlx.config import check_offline


@dataclasses.dataclass(frozen=True)
class IQLConfig:
    """Static settings (IQL paper defaults: 256×256, batch 256, 1M steps for D4RL)."""

    total_steps: int = 100_000  # gradient steps per run
    steps_per_iteration: int = 1_000
    batch_size: int = 256
    hidden: tuple[int, ...] = (256, 256)
    normalize_obs: bool = False  # standardise observations by the dataset's statistics
    reward_scale: str = "none"  # none | episode_range: × 1000/(max − min episode return), for locomotion
    critic_loss: str = "squared_error"  # squared_error | huber (XQL's choice)


@struct.dataclass
class IQLHparams:
    lr: jax.Array
    gamma: jax.Array
    polyak: jax.Array
    beta: jax.Array  # AWR inverse temperature
    max_weight: jax.Array  # AWR weight clip
    value: dict  # keyword arguments of the value loss (τ for the expectile)


@struct.dataclass
class IQLState:
    params: Any  # {"actor", "critic", "value"}
    target_critic: Any
    opt_state: Any
    key: jax.Array
    iteration: jax.Array


@struct.dataclass
class Policy:
    actor: Any
    obs_mean: jax.Array
    obs_std: jax.Array


class GaussianActor(nn.Module):
    """IQL's policy: N(tanh(μ(s)), σ²) with a state-independent σ; the mode tanh(μ) is in [−1, 1]."""

    action_dim: int
    hidden: tuple[int, ...]

    @nn.compact
    def __call__(self, obs):
        x = nets.MLP(self.hidden, "relu")(obs)
        mean = jnp.tanh(nets.Dense(self.action_dim)(x))
        log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))
        return mean, jnp.clip(log_std, -5.0, 2.0)


def gaussian_act(actor: GaussianActor):
    """The ``act`` of an agent whose policy is a :class:`Policy` of ``actor`` (IQL, AWAC, BC, ReCOIL).

    Observations are standardised as in training; deterministic: the mode tanh(μ); otherwise a
    Gaussian sample clipped to [−1, 1].
    """
    def act(pol: Policy, obs, key, deterministic: bool = False):
        mean, log_std = actor.apply(pol.actor, (obs - pol.obs_mean) / pol.obs_std)
        if deterministic:
            return mean
        return jnp.clip(mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape), -1.0, 1.0)

    return act


REWARD_SCALES = data.REWARD_SCALES
CRITIC_LOSSES = ("squared_error", "huber")


def validate(config: IQLConfig, spec: envs.EnvSpec, dataset: data.Dataset) -> None:
    """Every check that can be made before compiling; errors name the field and what it accepts."""
    check_offline(config, IQLConfig, spec, agent="IQL", dataset=dataset,
                  choices={"reward_scale": REWARD_SCALES, "critic_loss": CRITIC_LOSSES})


def default_hparams(value_loss: Callable = objectives.expectile) -> IQLHparams:
    f = lambda x: jnp.asarray(x, jnp.float32)
    return IQLHparams(lr=f(3e-4), gamma=f(0.99), polyak=f(0.005), beta=f(3.0), max_weight=f(100.0),
                      value=objectives.keyword_defaults(value_loss))


def gaussian_log_prob(mean, log_std, action):
    return jnp.sum(-0.5 * ((action - mean) / jnp.exp(log_std)) ** 2 - log_std - 0.5 * jnp.log(2 * jnp.pi), -1)


def make(config: IQLConfig, dataset: data.Dataset, env, env_params, value_loss: Callable = objectives.expectile,
         name: str = "iql") -> Agent:
    """Build IQL (or, with another ``value_loss``, a dual-V agent) on ``dataset``."""
    spec = envs.spec(env, env_params)
    validate(config, spec, dataset)
    # Everything about the data that never changes is computed once, outside the program.
    prep = data.prepare(dataset, env, env_params, normalize_obs=config.normalize_obs,
                        reward_scale=config.reward_scale)
    ds, obs_mean, obs_std = prep.data, prep.obs_mean, prep.obs_std

    actor = GaussianActor(spec.num_actions, config.hidden)
    critic = critics.QEnsemble(config.hidden)
    value = nets.ValueNet(config.hidden, "relu")
    num_iterations = config.total_steps // config.steps_per_iteration
    critic_error = objectives.huber if config.critic_loss == "huber" else objectives.squared_error
    adam = optax.adam(1.0)  # learning rates are applied by hand, so they stay dynamic hyperparameters

    def init(key, hp: IQLHparams, env_params_=None) -> IQLState:
        k_a, k_c, k_v, key = jax.random.split(key, 4)
        obs, act = ds.obs[:1], ds.action[:1]
        params = {"actor": actor.init(k_a, obs), "critic": critic.init(k_c, obs, act), "value": value.init(k_v, obs)}
        return IQLState(params, params["critic"], adam.init(params), key, jnp.int32(0))

    def losses(params, target_critic, hp, batch, lr_frac):
        q_target = critic.apply(target_critic, batch.obs, batch.action).min(0)
        v = value.apply(params["value"], batch.obs)
        u = jax.lax.stop_gradient(q_target) - v
        value_loss_ = value_loss(u, **hp.value)
        mean, log_std = actor.apply(params["actor"], batch.obs)
        advantage = jax.lax.stop_gradient(u)
        actor_loss = objectives.awr_actor(gaussian_log_prob(mean, log_std, batch.action), advantage,
                                          beta=hp.beta, max_weight=hp.max_weight)
        next_v = jax.lax.stop_gradient(value.apply(params["value"], batch.next_obs))
        y = batch.reward + hp.gamma * (1.0 - batch.terminated) * next_v
        q = critic.apply(params["critic"], batch.obs, batch.action)
        critic_loss = jnp.sum(jax.vmap(critic_error, in_axes=(0, None))(q, y))
        # The three losses touch disjoint parameters, so one gradient of their sum is the
        # three updates at once; the actor's cosine-decayed lr is applied per parameter group.
        return value_loss_ + actor_loss + critic_loss, {
            "loss/value": value_loss_, "loss/actor": actor_loss, "loss/critic": critic_loss,
            "q": q.mean(), "v": v.mean(), "awr_weight": objectives.awr_weights(advantage, beta=hp.beta).mean()}

    def grad_step(carry, key):
        params, target_critic, opt_state, step, hp = carry
        batch = ds.sample(key, config.batch_size)
        progress = step.astype(jnp.float32) / config.total_steps
        grads, metrics = jax.grad(losses, has_aux=True)(params, target_critic, hp, batch, progress)
        updates, opt_state = adam.update(grads, opt_state)
        actor_lr = hp.lr * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
        # Every parameter write waits for every gradient, so the weights are updated in place.
        after = critics.zero_after(grads)
        lrs = {"actor": actor_lr + after, "critic": hp.lr + after, "value": hp.lr + after}
        params = {k: jax.tree.map(lambda p, u: p + lrs[k] * u, params[k], updates[k]) for k in params}
        target_critic = critics.polyak(target_critic, params["critic"], hp.polyak)
        return (params, target_critic, opt_state, step + 1, hp), metrics

    def update(state: IQLState, hp: IQLHparams):
        key, k_steps = jax.random.split(state.key)
        step0 = state.iteration * config.steps_per_iteration
        carry = (state.params, state.target_critic, state.opt_state, step0, hp)
        (params, target_critic, opt_state, _, _), metrics = jax.lax.scan(
            grad_step, carry, jax.random.split(k_steps, config.steps_per_iteration))
        state = IQLState(params, target_critic, opt_state, key, state.iteration + 1)
        return state, jax.tree.map(jnp.mean, metrics)

    def policy(state: IQLState) -> Policy:
        return Policy(state.params["actor"], obs_mean, obs_std)

    act = gaussian_act(actor)

    eval_env = envs.RescaleAction(env, prep.action_low, prep.action_high)
    return Agent(name=name, config=config, env=env, env_params=env_params, spec=spec, init=init, update=update,
                 policy=policy, act=act, default_hparams=lambda: default_hparams(value_loss),
                 num_iterations=num_iterations, steps_per_iteration=config.steps_per_iteration, eval_env=eval_env)


Config = IQLConfig
Hparams = IQLHparams
HELP = {
    "total_steps": "gradient steps per run",
    "steps_per_iteration": "gradient steps between evaluations' granularity (one update call)",
    "batch_size": "transitions per gradient step",
    "hidden": "hidden layer widths of actor, critics and value",
    "normalize_obs": "standardise observations by the dataset's mean and std",
    "reward_scale": "none, or episode_range: rewards × 1000/(max − min episode return) (locomotion)",
    "critic_loss": "critic regression loss: squared_error or huber",
    "lr": "Adam learning rate (actor's decays with a cosine)",
    "gamma": "discount γ",
    "polyak": "target-critic Polyak rate τ",
    "beta": "AWR inverse temperature β",
    "max_weight": "AWR weight clip",
}

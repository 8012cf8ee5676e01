"""AWAC, offline: advantage-weighted actor-critic on a fixed dataset.

Nair et al. 2020, "AWAC: Accelerating Online Reinforcement Learning with Offline Datasets",
run in its offline phase only. One ``update`` is ``steps_per_iteration`` gradient steps in
a ``lax.scan``, each on a fresh uniform batch of the dataset. Each step computes both
losses from the same parameters and applies them together (they touch disjoint
parameters), then moves the target critics:

    critic  Σ_i mean((Q_i(s,a) − y)²),  y = r + γ(1 − terminated)·min_i Q̄_i(s', a'),  a' ~ π(·|s')
            (SAC's twin critics without the entropy term)
    actor   −mean(w · log π(a|s)) on the dataset's (s, a), w held constant, where
              A(s,a) = min_i Q_i(s,a) − (1/K) Σ_k min_i Q_i(s, a_k),   a_k ~ π(·|s), K = num_action_samples
              weights = "batch_softmax" (default):  w = B · softmax_batch(A/λ), i.e. exp(A/λ) / mean_batch exp(A/λ)
                        "clipped_exp":              w = min(exp(A/λ), max_weight)   (objectives.awr_weights, β = 1/λ)
            λ = temperature = 1 (the paper's value); the paper's reference code normalises the
            weights over the batch as "batch_softmax" does.
    targets Q̄ ← Q̄ + τ(Q − Q̄)

The advantage uses the current critics Q (gradient stopped), as the paper's code does.

Policy: N(tanh(μ(s)), σ²) with a learned state-independent σ (log σ clipped to [−5, 2]),
IQL's Gaussian actor (agents/iql.py): the mode tanh(μ(s)) lies in [−1, 1], and the dataset
actions (mapped to [−1, 1]) always have a finite log-density. Actions sampled for the
critic target, for the advantage baseline and for stochastic acting are clipped to [−1, 1];
evaluation acts with the mode.

Actions are mapped to [−1, 1] by the env's bounds (``rlx.data.prepare``); evaluation
rescales them back (and standardises observations, with ``normalize_obs=True``).

    ds = rlx.data.load("pendulum-medium.npz")
    agent = awac.make(awac.AWACConfig(), ds, *rlx.envs.make("Pendulum-v1"))
    state, metrics = jax.jit(jax.vmap(rlx.make_train(agent), in_axes=(0, None)))(keys, agent.default_hparams())
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from rlx import critics, data, envs, objectives
from rlx.agent import Agent
from rlx.agents.iql import GaussianActor, Policy, gaussian_act, gaussian_log_prob
from rlx.config import ConfigError, check_offline


@dataclasses.dataclass(frozen=True)
class AWACConfig:
    """Static settings (AWAC defaults: 256×256 ReLU, lr 3e-4, batch 256 as in the rlx offline agents)."""

    total_steps: int = 100_000  # gradient steps per run
    steps_per_iteration: int = 1_000
    batch_size: int = 256
    hidden: tuple[int, ...] = (256, 256)
    normalize_obs: bool = False  # standardise observations by the dataset's statistics
    reward_scale: str = "none"  # none | episode_range: × 1000/(max − min episode return)
    num_action_samples: int = 1  # K policy actions per state for the baseline E_π[min Q(s, ·)]
    weights: str = "batch_softmax"  # batch_softmax | clipped_exp
    critic_loss: str = "squared_error"  # squared_error | huber


@struct.dataclass
class AWACHparams:
    actor_lr: jax.Array
    critic_lr: jax.Array
    gamma: jax.Array
    tau: jax.Array  # Polyak rate of the target critics
    temperature: jax.Array  # λ: weights ∝ exp(A/λ)
    max_weight: jax.Array  # weight clip of "clipped_exp" (unused by "batch_softmax")


@struct.dataclass
class AWACState:
    params: Any  # {"actor", "critic"}
    target_critic: Any
    opt_state: Any
    key: jax.Array
    iteration: jax.Array


REWARD_SCALES = data.REWARD_SCALES
WEIGHTS = ("batch_softmax", "clipped_exp")
CRITIC_LOSSES = ("squared_error", "huber")


def validate(config: AWACConfig, spec: envs.EnvSpec, dataset: data.Dataset) -> None:
    """Every check that can be made before compiling; errors name the field and what it accepts."""
    check_offline(config, AWACConfig, spec, agent="AWAC", dataset=dataset, positive_ints=("num_action_samples",),
                  choices={"reward_scale": REWARD_SCALES, "weights": WEIGHTS, "critic_loss": CRITIC_LOSSES})


def default_hparams() -> AWACHparams:
    """AWAC defaults: lr 3e-4 (both), γ 0.99, τ 0.005, λ = 1; clipped_exp's clip 100 (IQL's)."""
    f = lambda x: jnp.asarray(x, jnp.float32)
    return AWACHparams(actor_lr=f(3e-4), critic_lr=f(3e-4), gamma=f(0.99), tau=f(0.005), temperature=f(1.0),
                       max_weight=f(100.0))


def advantage(q_data, q_policy):
    """A = min_i Q_i(s,a) − mean_k min_i Q_i(s, a_k).

    Args:
      q_data: [num_critics, B] Q at the dataset actions.
      q_policy: [K, num_critics, B] Q at K policy actions per state.
    """
    return q_data.min(0) - q_policy.min(1).mean(0)


def advantage_weights(adv, *, temperature, max_weight, weights: str = "batch_softmax"):
    """AWAC's actor weights (gradient stopped).

    "batch_softmax": w = B·softmax(A/λ) over the batch (mean weight 1; the paper's code);
    "clipped_exp": w = min(exp(A/λ), max_weight) (:func:`rlx.objectives.awr_weights`, β = 1/λ).
    """
    if weights == "batch_softmax":
        return jax.lax.stop_gradient(adv.shape[0] * jax.nn.softmax(adv / temperature))
    if weights == "clipped_exp":
        return objectives.awr_weights(adv, beta=1.0 / temperature, max_weight=max_weight)
    raise ConfigError(f"weights={weights!r} is not accepted; choose one of: " + ", ".join(WEIGHTS))


def make(config: AWACConfig, dataset: data.Dataset, env, env_params, name: str = "awac") -> Agent:
    """Build offline AWAC on ``dataset``; validates everything before any tracing.

    ``agent.update.losses(params, target_critic, hp, batch, key) -> (total, metrics)`` is
    one step's losses alone, on a prepared batch.
    """
    spec = envs.spec(env, env_params)
    validate(config, spec, dataset)
    prep = data.prepare(dataset, env, env_params, normalize_obs=config.normalize_obs,
                        reward_scale=config.reward_scale)
    ds, obs_mean, obs_std = prep.data, prep.obs_mean, prep.obs_std

    actor = GaussianActor(spec.num_actions, config.hidden)
    critic = critics.QEnsemble(config.hidden, "relu", 2)
    critic_error = objectives.huber if config.critic_loss == "huber" else objectives.squared_error
    num_iterations = config.total_steps // config.steps_per_iteration
    K = config.num_action_samples
    adam = optax.scale_by_adam()  # learning rates are applied by hand, so they stay dynamic hyperparameters

    def sample(mean, log_std, key, shape=()):
        noise = jax.random.normal(key, shape + mean.shape)
        return jnp.clip(mean + jnp.exp(log_std) * noise, -1.0, 1.0)

    def init(key, hp: AWACHparams, env_params_=None) -> AWACState:
        k_a, k_c, key = jax.random.split(key, 3)
        obs, act = ds.obs[:1], ds.action[:1]
        params = {"actor": actor.init(k_a, obs), "critic": critic.init(k_c, obs, act)}
        return AWACState(params, params["critic"], adam.init(params), key, jnp.int32(0))

    def losses(params, target_critic, hp: AWACHparams, batch, key):
        k_next, k_pi = jax.random.split(key)
        # Critic: twin Q regressed on y with a' ~ π(·|s'), no entropy term.
        next_mean, next_log_std = actor.apply(params["actor"], batch.next_obs)
        next_action = jax.lax.stop_gradient(sample(next_mean, next_log_std, k_next))
        next_q = critic.apply(target_critic, batch.next_obs, next_action).min(0)
        y = jax.lax.stop_gradient(batch.reward + hp.gamma * (1.0 - batch.terminated) * next_q)
        q = critic.apply(params["critic"], batch.obs, batch.action)  # [2, B]
        critic_loss = jnp.sum(jax.vmap(critic_error, in_axes=(0, None))(q, y))

        # Actor: advantage-weighted log-likelihood of the dataset actions.
        mean, log_std = actor.apply(params["actor"], batch.obs)
        pi_actions = jax.lax.stop_gradient(sample(mean, log_std, k_pi, (K,)))  # [K, B, A]
        frozen = jax.lax.stop_gradient(params["critic"])
        q_pi = jax.vmap(lambda a: critic.apply(frozen, batch.obs, a))(pi_actions)  # [K, 2, B]
        adv = jax.lax.stop_gradient(advantage(q, q_pi))
        w = advantage_weights(adv, temperature=hp.temperature, max_weight=hp.max_weight, weights=config.weights)
        actor_loss = -jnp.mean(w * gaussian_log_prob(mean, log_std, batch.action))
        return critic_loss + actor_loss, {
            "loss/critic": critic_loss, "loss/actor": actor_loss, "q": q.mean(), "advantage": adv.mean(),
            "weight_max": w.max(), "std": jnp.exp(log_std).mean()}

    def grad_step(state: AWACState, hp: AWACHparams, key):
        k_sample, k_loss = jax.random.split(key)
        batch = ds.sample(k_sample, config.batch_size)
        grads, metrics = jax.grad(losses, has_aux=True)(state.params, state.target_critic, hp, batch, k_loss)
        updates, opt_state = adam.update(grads, state.opt_state)
        lrs = {"actor": hp.actor_lr, "critic": hp.critic_lr}
        params = {k: jax.tree.map(lambda p, u: p - lrs[k] * u, state.params[k], updates[k]) for k in state.params}
        target_critic = critics.polyak(state.target_critic, params["critic"], hp.tau)
        return state.replace(params=params, target_critic=target_critic, opt_state=opt_state), metrics

    def update(state: AWACState, hp: AWACHparams):
        key, k_steps = jax.random.split(state.key)
        state, metrics = jax.lax.scan(lambda s, k: grad_step(s, hp, k), state,
                                      jax.random.split(k_steps, config.steps_per_iteration))
        metrics = jax.tree.map(jnp.mean, metrics)
        return state.replace(key=key, iteration=state.iteration + 1), metrics

    def policy(state: AWACState) -> Policy:
        return Policy(state.params["actor"], obs_mean, obs_std)

    act = gaussian_act(actor)

    update.losses = losses
    eval_env = envs.RescaleAction(env, prep.action_low, prep.action_high)
    return Agent(name=name, config=config, env=env, env_params=env_params, spec=spec, init=init, update=update,
                 policy=policy, act=act, default_hparams=default_hparams, num_iterations=num_iterations,
                 steps_per_iteration=config.steps_per_iteration, eval_env=eval_env)


Config = AWACConfig
Hparams = AWACHparams
HELP = {
    "total_steps": "gradient steps per run",
    "steps_per_iteration": "gradient steps per update call (the granularity of evaluations)",
    "batch_size": "transitions per gradient step",
    "hidden": "hidden layer widths of actor and critics",
    "normalize_obs": "standardise observations by the dataset's mean and std",
    "reward_scale": "none, or episode_range: rewards × 1000/(max − min episode return)",
    "num_action_samples": "policy actions per state for the advantage baseline E_π[min Q(s,·)]",
    "weights": "batch_softmax: B·softmax(A/λ) over the batch (the paper's code), "
               "or clipped_exp: min(exp(A/λ), max_weight)",
    "critic_loss": "critic regression loss: squared_error or huber",
    "actor_lr": "actor Adam learning rate",
    "critic_lr": "critic Adam learning rate",
    "gamma": "discount γ",
    "tau": "Polyak rate τ of the target critics",
    "temperature": "AWAC temperature λ: weights ∝ exp(A/λ)",
    "max_weight": "weight clip of weights=clipped_exp",
}

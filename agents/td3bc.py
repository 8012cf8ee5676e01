"""TD3+BC: TD3 with a behaviour-cloning term in the actor, for offline data.

Fujimoto & Gu 2021, "A Minimalist Approach to Offline Reinforcement Learning". TD3 (see
agents/td3.py) learns from a fixed dataset; the only change to the algorithm is the actor
loss, plus standardised observations. One ``update`` is ``steps_per_iteration`` gradient
steps in a ``lax.scan``, each on a fresh uniform batch of the dataset. At global gradient
step t = 1, 2, ...:

    critic  Σ_i mean((Q_i(s,a) − y)²),
            y = r + γ(1 − terminated)·min_i Q̄_i(s', clip(μ̄(s') + clip(ε, −c, c), −1, 1)),
            ε ~ N(0, target_noise²), c = noise_clip                     (target policy smoothing)
    actor   −λ·mean Q_1(s, μ(s)) + mean ‖μ(s) − a‖²,   λ = α / mean|Q_1(s, μ(s))|   (λ held constant)
            only when t % policy_delay == 0, against the critic just updated
    targets μ̄ ← μ̄ + τ(μ − μ̄), Q̄ ← Q̄ + τ(Q − Q̄), at those same steps

The actor is deterministic, μ(s) = tanh(MLP(s)) ∈ (−1, 1)^A. Defaults are the paper's:
α = 2.5, policy_delay 2, smoothing σ 0.2 clipped at 0.5, 256×256 ReLU, lr 3e-4, batch 256,
γ 0.99, τ 0.005, observations standardised by the dataset's mean and std (+1e-3).

The BC term is :func:`rlx.objectives.td3bc_actor`'s: the squared error averaged over the
batch and the action dimensions, as in the paper's reference code.

The delayed actor update is a ``lax.cond`` on the global step. When ``steps_per_iteration``
is a multiple of ``policy_delay`` the predicate depends on the scan index alone, so it is
never per-run data and stays a real branch under any ``vmap`` (also when the CLI vmaps the
whole state); otherwise it also reads ``state.iteration``, which is unbatched under
``make_train`` but batched under ``run_population``, where the cond becomes a select
(same results, the actor gradient is then computed at every step).

Actions are mapped to [−1, 1] by the env's bounds (``rlx.data.prepare``); evaluation
rescales them back and standardises the env's observations with the dataset's statistics.

    ds = rlx.data.load("pendulum-medium.npz")
    agent = td3bc.make(td3bc.TD3BCConfig(), ds, *rlx.envs.make("Pendulum-v1"))
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
from rlx.agents.td3 import DeterministicPolicy
from rlx.config import check_offline


@dataclasses.dataclass(frozen=True)
class TD3BCConfig:
    """Static settings (TD3+BC paper defaults: 256×256, batch 256, policy delay 2; 1M steps for D4RL)."""

    total_steps: int = 100_000  # gradient steps per run
    steps_per_iteration: int = 1_000
    batch_size: int = 256
    hidden: tuple[int, ...] = (256, 256)
    normalize_obs: bool = True  # standardise observations by the dataset's statistics (the paper does)
    reward_scale: str = "none"  # none | episode_range: × 1000/(max − min episode return)
    policy_delay: int = 2  # gradient steps per actor and target update
    critic_loss: str = "squared_error"  # squared_error | huber


@struct.dataclass
class TD3BCHparams:
    actor_lr: jax.Array
    critic_lr: jax.Array
    gamma: jax.Array
    tau: jax.Array  # Polyak rate of the target actor and critics
    alpha: jax.Array  # λ = α / mean|Q|: weight of the Q term against behaviour cloning
    target_noise: jax.Array  # σ of the target policy smoothing noise
    noise_clip: jax.Array  # the smoothing noise is clipped to ±noise_clip


@struct.dataclass
class TD3BCState:
    params: Any  # {"actor", "critic"}
    target: Any  # {"actor", "critic"}
    opt_state: Any  # {"actor", "critic"}: separate Adam states (the actor moves on fewer steps)
    key: jax.Array
    iteration: jax.Array


@struct.dataclass
class Policy:
    actor: Any
    obs_mean: jax.Array
    obs_std: jax.Array


REWARD_SCALES = data.REWARD_SCALES
CRITIC_LOSSES = ("squared_error", "huber")
METRICS = ("loss/critic", "loss/actor", "q", "lambda", "bc", "actor_updates")


def validate(config: TD3BCConfig, spec: envs.EnvSpec, dataset: data.Dataset) -> None:
    """Every check that can be made before compiling; errors name the field and what it accepts."""
    check_offline(config, TD3BCConfig, spec, agent="TD3+BC", dataset=dataset, positive_ints=("policy_delay",),
                  choices={"reward_scale": REWARD_SCALES, "critic_loss": CRITIC_LOSSES})


def default_hparams() -> TD3BCHparams:
    """TD3+BC paper defaults: lr 3e-4 (both), γ 0.99, τ 0.005, α 2.5, smoothing σ 0.2 clipped at 0.5."""
    f = lambda x: jnp.asarray(x, jnp.float32)
    return TD3BCHparams(actor_lr=f(3e-4), critic_lr=f(3e-4), gamma=f(0.99), tau=f(0.005), alpha=f(2.5),
                        target_noise=f(0.2), noise_clip=f(0.5))


def smoothed_action(target_action, key, target_noise, noise_clip):
    """Target policy smoothing: clip(μ̄(s') + clip(ε, −c, c), −1, 1), ε ~ N(0, target_noise²)."""
    noise = jnp.clip(target_noise * jax.random.normal(key, target_action.shape), -noise_clip, noise_clip)
    return jnp.clip(target_action + noise, -1.0, 1.0)


def make(config: TD3BCConfig, dataset: data.Dataset, env, env_params, name: str = "td3bc") -> Agent:
    """Build TD3+BC on ``dataset``; validates everything before any tracing.

    ``agent.update.gradient_step(state, hp, key, step) -> (state, metrics)`` is one gradient
    step alone (``step``: the 1-based global step number that decides the actor update).
    """
    spec = envs.spec(env, env_params)
    validate(config, spec, dataset)
    prep = data.prepare(dataset, env, env_params, normalize_obs=config.normalize_obs,
                        reward_scale=config.reward_scale)
    ds, obs_mean, obs_std = prep.data, prep.obs_mean, prep.obs_std

    actor = DeterministicPolicy(spec.num_actions, config.hidden, "relu")
    critic = critics.QEnsemble(config.hidden, "relu", 2)
    critic_error = objectives.huber if config.critic_loss == "huber" else objectives.squared_error
    num_iterations = config.total_steps // config.steps_per_iteration
    delay = config.policy_delay
    # If every iteration starts on a multiple of policy_delay, the scan index alone decides.
    phase_free = config.steps_per_iteration % delay == 0
    adam = optax.scale_by_adam()  # learning rates are applied by hand, so they stay dynamic hyperparameters

    def init(key, hp: TD3BCHparams, env_params_=None) -> TD3BCState:
        k_a, k_c, key = jax.random.split(key, 3)
        obs, act = ds.obs[:1], ds.action[:1]
        params = {"actor": actor.init(k_a, obs), "critic": critic.init(k_c, obs, act)}
        opt_state = {"actor": adam.init(params["actor"]), "critic": adam.init(params["critic"])}
        return TD3BCState(params, params, opt_state, key, jnp.int32(0))

    def critic_loss_of(critic_params, target, hp: TD3BCHparams, batch, key):
        next_action = smoothed_action(actor.apply(target["actor"], batch.next_obs), key, hp.target_noise,
                                      hp.noise_clip)
        next_q = critic.apply(target["critic"], batch.next_obs, next_action).min(0)
        y = jax.lax.stop_gradient(batch.reward + hp.gamma * (1.0 - batch.terminated) * next_q)
        q = critic.apply(critic_params, batch.obs, batch.action)  # [2, B]
        return jnp.sum(jax.vmap(critic_error, in_axes=(0, None))(q, y)), q

    def actor_loss_of(actor_params, critic_params, hp: TD3BCHparams, batch):
        pi = actor.apply(actor_params, batch.obs)
        q = critic.apply(critic_params, batch.obs, pi)[0]
        loss = objectives.td3bc_actor(q, pi, batch.action, alpha=hp.alpha)
        lam = hp.alpha / jnp.mean(jnp.abs(q))
        return loss, (lam, jnp.mean((pi - batch.action) ** 2))

    def gradient_step(state: TD3BCState, hp: TD3BCHparams, key, step):
        """One critic step; actor and targets too if ``step % policy_delay == 0``."""
        k_sample, k_noise = jax.random.split(key)
        batch = ds.sample(k_sample, config.batch_size)
        (loss_q, q), g = jax.value_and_grad(critic_loss_of, has_aux=True)(state.params["critic"], state.target, hp,
                                                                           batch, k_noise)
        upd, opt_critic = adam.update(g, state.opt_state["critic"])
        critic_params = jax.tree.map(lambda p, u: p - hp.critic_lr * u, state.params["critic"], upd)

        def delayed(_):
            (loss_pi, (lam, bc)), g = jax.value_and_grad(actor_loss_of, has_aux=True)(
                state.params["actor"], critic_params, hp, batch)
            upd, opt_actor = adam.update(g, state.opt_state["actor"])
            actor_params = jax.tree.map(lambda p, u: p - hp.actor_lr * u, state.params["actor"], upd)
            params = {"actor": actor_params, "critic": critic_params}
            return params, opt_actor, critics.polyak(state.target, params, hp.tau), (loss_pi, lam, bc)

        def critic_only(_):
            zero = jnp.float32(0.0)
            return ({"actor": state.params["actor"], "critic": critic_params}, state.opt_state["actor"],
                    state.target, (zero, zero, zero))

        on = step % delay == 0
        params, opt_actor, target, (loss_pi, lam, bc) = jax.lax.cond(on, delayed, critic_only, None)
        metrics = {"loss/critic": loss_q, "loss/actor": loss_pi, "q": jnp.mean(q), "lambda": lam, "bc": bc,
                   "actor_updates": on.astype(jnp.float32)}
        return state.replace(params=params, target=target,
                             opt_state={"actor": opt_actor, "critic": opt_critic}), metrics

    def update(state: TD3BCState, hp: TD3BCHparams):
        key, k_steps = jax.random.split(state.key)
        spi = config.steps_per_iteration
        offset = jnp.int32(0) if phase_free else state.iteration * spi

        def body(s, xs):
            k, j = xs
            return gradient_step(s, hp, k, offset + j + 1)

        state, metrics = jax.lax.scan(body, state, (jax.random.split(k_steps, spi), jnp.arange(spi, dtype=jnp.int32)))
        n_actor = metrics["actor_updates"].sum()
        out = jax.tree.map(jnp.mean, metrics)
        # Actor metrics: means over the steps that updated the actor (0 if none did this iteration).
        for k in ("loss/actor", "lambda", "bc"):
            out[k] = metrics[k].sum() / jnp.maximum(n_actor, 1.0)
        out["actor_updates"] = n_actor
        return state.replace(key=key, iteration=state.iteration + 1), out

    def policy(state: TD3BCState) -> Policy:
        return Policy(state.params["actor"], obs_mean, obs_std)

    def act(pol: Policy, obs, key, deterministic: bool = False):
        # Offline: evaluation is deterministic; otherwise TD3's exploration noise (σ 0.1).
        mu = actor.apply(pol.actor, (obs - pol.obs_mean) / pol.obs_std)
        if deterministic:
            return mu
        return jnp.clip(mu + 0.1 * jax.random.normal(key, mu.shape), -1.0, 1.0)

    update.gradient_step = gradient_step
    eval_env = envs.RescaleAction(env, prep.action_low, prep.action_high)
    return Agent(name=name, config=config, env=env, env_params=env_params, spec=spec, init=init, update=update,
                 policy=policy, act=act, default_hparams=default_hparams, num_iterations=num_iterations,
                 steps_per_iteration=config.steps_per_iteration, eval_env=eval_env)


Config = TD3BCConfig
Hparams = TD3BCHparams
HELP = {
    "total_steps": "gradient steps per run",
    "steps_per_iteration": "gradient steps per update call (the granularity of evaluations)",
    "batch_size": "transitions per gradient step",
    "hidden": "hidden layer widths of actor and critics",
    "normalize_obs": "standardise observations by the dataset's mean and std (TD3+BC does)",
    "reward_scale": "none, or episode_range: rewards × 1000/(max − min episode return)",
    "policy_delay": "gradient steps per actor and target update",
    "critic_loss": "critic regression loss: squared_error or huber",
    "actor_lr": "actor Adam learning rate",
    "critic_lr": "critic Adam learning rate",
    "gamma": "discount γ",
    "tau": "Polyak rate τ of the target actor and critics",
    "alpha": "α of λ = α/mean|Q|: weight of the Q term against behaviour cloning",
    "target_noise": "σ of the target policy smoothing noise",
    "noise_clip": "clip of the target policy smoothing noise",
}

"""Soft actor-critic with a pluggable actor objective.

Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications": tanh-Gaussian actor,
twin critics with Polyak-averaged targets, automatic temperature with target entropy −|A|.

One ``update`` (one iteration) is

    act         train_freq steps of num_envs envs     (uniform random actions during warm-up)
    store       each step's num_envs transitions go into the replay buffer
    learn       gradient_steps updates, each on a fresh uniform batch   (skipped during warm-up)
                  critic  Σ_i loss(Q_i(s,a), y),  y = r + γ(1 − terminated)(min_i Q̄_i(s',a') − α log π(a'|s'))
                  actor   the actor objective, default mean(α log π(a|s) − min_i Q_i(s,a)), a ~ π reparameterised
                  α       −mean(log α · (log π(a|s) + target_entropy))
                  targets Q̄ ← Q̄ + τ (Q − Q̄)

so the update-to-data ratio is gradient_steps / (train_freq × num_envs). Warm-up lasts the
first ``learning_starts`` steps of each env (ceil(learning_starts / train_freq) iterations).
s' is the true next state: a truncated episode's final observation, so targets bootstrap
through truncation and never through termination.

The actor objective is ``fn(log_prob, log_prob_old, q, *, alpha, **hp) -> scalar``: "sac"
(:func:`rlx.objectives.sac_actor`), "mdpo" (:func:`rlx.objectives.mdpo_actor` with
c = α + kl_coef, λ = α, π_k refreshed every ``old_policy_period`` gradient steps) or your own.

    agent = sac.make(sac.SACConfig(total_timesteps=20_000), *rlx.envs.make("Pendulum-v1"))
    state, metrics = jax.jit(jax.vmap(rlx.make_train(agent), in_axes=(0, None)))(keys, agent.default_hparams())
"""
from __future__ import annotations

import dataclasses
import inspect
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from rlx import critics, envs, nets, objectives, replay
from rlx.agent import Agent
from rlx.config import ConfigError, check_choice, check_hidden, check_positive_int
from rlx.distributions import mode


@dataclasses.dataclass(frozen=True)
class SACConfig:
    """Static settings: changing any of them recompiles.

    Defaults are the SAC paper's (256×256 ReLU, batch 256, one update per env step).
    """

    total_timesteps: int = 100_000
    num_envs: int = 1
    train_freq: int = 1
    gradient_steps: int = 1
    batch_size: int = 256
    buffer_size: int = 1_000_000
    learning_starts: int = 1_000
    n_step: int = 1
    hidden: tuple[int, ...] = (256, 256)
    activation: str = "relu"
    critic_loss: str = "squared_error"
    num_critics: int = 2
    old_policy_period: int = 1_000


@struct.dataclass
class SACHparams:
    """Dynamic hyperparameters: arrays, so a batch of them vmaps and they can be differentiated."""

    actor_lr: jax.Array
    critic_lr: jax.Array
    alpha_lr: jax.Array
    gamma: jax.Array
    tau: jax.Array
    init_alpha: jax.Array
    autotune: jax.Array  # 1.0: learn α towards the target entropy; 0.0: α stays init_alpha
    target_entropy_scale: jax.Array  # target entropy = −scale·|A|
    objective: dict  # keyword arguments of the actor objective (besides α)


@struct.dataclass
class SACState:
    params: Any  # {"actor", "critic", "log_alpha"}
    target_critic: Any
    old_actor: Any  # π_k of MDPO-style objectives
    opt_state: Any
    buffer: replay.ReplayState
    env_state: Any
    obs: jax.Array
    env_params: Any
    key: jax.Array
    iteration: jax.Array
    grad_steps: jax.Array


class ActorObjective(NamedTuple):
    """``loss(log_prob, log_prob_old, q, *, alpha, **hp)``; ``uses_old``: needs log π_k."""

    name: str
    loss: Callable
    hparams: dict
    uses_old: bool


def _sac(log_prob, log_prob_old, q, *, alpha):
    return objectives.sac_actor(log_prob, q, alpha=alpha)


def _mdpo(log_prob, log_prob_old, q, *, alpha, kl_coef=1.0):
    return objectives.mdpo_actor(log_prob, log_prob_old, q, c=alpha + kl_coef, lam=alpha)


DEFAULT_OBJECTIVE = "sac"
METRICS = ("loss/critic", "loss/actor", "loss/alpha", "alpha", "entropy", "q")
ACTOR_OBJECTIVES = {"sac": (_sac, False), "mdpo": (_mdpo, True)}
CRITIC_LOSSES = ("squared_error", "huber")


def actor_objective(objective) -> ActorObjective:
    """Resolve a name ("sac", "mdpo") or a function to an actor objective."""
    if isinstance(objective, str):
        if objective not in ACTOR_OBJECTIVES:
            raise ConfigError(f"unknown SAC actor objective {objective!r}; choose one of: "
                              + ", ".join(ACTOR_OBJECTIVES) + ", or pass fn(log_prob, log_prob_old, q, *, alpha, ...)")
        fn, uses_old = ACTOR_OBJECTIVES[objective]
        name = objective
    elif callable(objective):
        fn, uses_old, name = objective, True, getattr(objective, "__name__", "custom")
    else:
        raise ConfigError(f"SAC's objective must be one of {', '.join(ACTOR_OBJECTIVES)} or a callable "
                          f"fn(log_prob, log_prob_old, q, *, alpha, ...), got {type(objective).__name__} "
                          "(the on-policy surrogates of rlx.objectives belong to PPO)")
    hp = {}
    for k, p in inspect.signature(fn).parameters.items():
        if p.kind is inspect.Parameter.KEYWORD_ONLY and k != "alpha":
            if p.default is inspect.Parameter.empty:
                raise ConfigError(f"actor objective {name!r}: keyword argument {k!r} needs a default value")
            hp[k] = jnp.asarray(p.default, jnp.float32)
    return ActorObjective(name, fn, hp, uses_old)


def validate(config: SACConfig, spec: envs.EnvSpec) -> None:
    """Every check that can be made before compiling."""
    owner = type(config).__name__
    if not isinstance(config, SACConfig):
        raise ConfigError(f"config must be a SACConfig, got {owner}")
    if spec.discrete:
        raise ConfigError(f"{owner}: SAC needs a continuous (Box) action space, but the env has {spec.num_actions} "
                          "discrete actions; use a continuous env such as Pendulum-v1 or brax:hopper, or PPO")
    for f in ("total_timesteps", "num_envs", "train_freq", "gradient_steps", "batch_size", "buffer_size",
              "learning_starts", "n_step", "num_critics", "old_policy_period"):
        check_positive_int(owner, f, getattr(config, f))
    check_hidden(owner, "hidden", config.hidden)
    check_choice(owner, "activation", config.activation, nets.ACTIVATIONS)
    check_choice(owner, "critic_loss", config.critic_loss, CRITIC_LOSSES)
    per_iter = config.num_envs * config.train_freq
    if config.total_timesteps < per_iter:
        raise ConfigError(f"{owner}.total_timesteps={config.total_timesteps} is smaller than one iteration "
                          f"(num_envs × train_freq = {per_iter})")
    env_steps = config.total_timesteps // config.num_envs
    if config.learning_starts >= env_steps:
        raise ConfigError(f"{owner}.learning_starts={config.learning_starts} (steps per env before updates start) "
                          f"must be below total_timesteps / num_envs = {env_steps}, or nothing is ever learned")
    held = config.learning_starts * config.num_envs
    if config.batch_size > held:
        raise ConfigError(f"{owner}.batch_size={config.batch_size} is larger than what the buffer holds when updates "
                          f"start (learning_starts × num_envs = {config.learning_starts} × {config.num_envs} = {held}); "
                          f"use batch_size ≤ {held} or raise learning_starts to ≥ "
                          f"{math.ceil(config.batch_size / config.num_envs)}")
    if config.buffer_size < max(config.batch_size, config.num_envs):
        raise ConfigError(f"{owner}.buffer_size={config.buffer_size} must be at least batch_size={config.batch_size} "
                          f"and num_envs={config.num_envs}")
    if config.n_step > 1 and config.buffer_size // config.num_envs <= config.n_step:
        raise ConfigError(f"{owner}.n_step={config.n_step} needs buffer_size / num_envs > n_step")


def default_hparams(objective: ActorObjective | None = None) -> SACHparams:
    """SAC paper defaults: lr 3e-4 for actor, critics and α; γ 0.99; τ 0.005; α₀ 1, learned."""
    obj = objective or actor_objective("sac")
    f = lambda x: jnp.asarray(x, jnp.float32)
    return SACHparams(actor_lr=f(3e-4), critic_lr=f(3e-4), alpha_lr=f(3e-4), gamma=f(0.99), tau=f(0.005),
                      init_alpha=f(1.0), autotune=f(1.0), target_entropy_scale=f(1.0), objective=dict(obj.hparams))


def soft_td_target(batch: replay.Batch, next_q, next_log_prob, alpha):
    """y = r + discount·(min_i Q̄_i(s', a') − α log π(a'|s')), discount = γ^m (1 − terminated) from the buffer."""
    return batch.reward + batch.discount * (next_q - alpha * next_log_prob)


def critic_loss_fn(name: str) -> Callable:
    return {"squared_error": objectives.squared_error, "huber": objectives.huber}[name]


def stored_capacity(config) -> int:
    """Transitions the buffer keeps: buffer_size, but never more than a run produces."""
    return min(config.buffer_size, config.total_timesteps)


def rollout(train_env, act_fn, state, ep, num_steps: int, key):
    """``num_steps`` steps of the vectorised env, each row added to the buffer.

    ``act_fn(obs, key) -> action in [−1, 1]``. Returns the new (env_state, obs, buffer) and the
    sum and count of episode returns that ended.
    """
    def step(carry, key):
        env_state, obs, buf, ret_sum, count = carry
        k_act, k_env = jax.random.split(key)
        action = act_fn(obs, k_act)
        next_obs, env_state, reward, terminated, truncated, info = train_env.step(k_env, env_state, action, ep)
        buf = replay.add(buf, replay.Transition(obs, action, reward.astype(jnp.float32), terminated, truncated,
                                                info["final_observation"]))
        carry = (env_state, next_obs, buf, ret_sum + info["episode_return"].sum(), count + info["episode_done"].sum())
        return carry, None

    carry = (state.env_state, state.obs, state.buffer, jnp.float32(0.0), jnp.int32(0))
    (env_state, obs, buf, ret_sum, count), _ = jax.lax.scan(step, carry, jax.random.split(key, num_steps))
    return env_state, obs, buf, ret_sum, count


def make(config: SACConfig, env, env_params, objective: str | Callable = "sac") -> Agent:
    """Build the SAC agent for ``env``; validates everything before any tracing."""
    spec = envs.spec(env, env_params)
    validate(config, spec)
    obj = actor_objective(objective)
    num_actions = spec.num_actions
    steps_per_iteration = config.num_envs * config.train_freq
    num_iterations = config.total_timesteps // steps_per_iteration
    warmup_iterations = -(-config.learning_starts // config.train_freq)

    actor = nets.TanhGaussianPolicy(num_actions, config.hidden, config.activation)
    critic = critics.QEnsemble(config.hidden, config.activation, config.num_critics)
    critic_loss = critic_loss_fn(config.critic_loss)
    # The policy acts in [−1, 1]^A; the env sees the action rescaled onto its box.
    eval_env = envs.RescaleAction(env, spec.action_low, spec.action_high)
    train_env = envs.VecEnv(eval_env, config.num_envs)
    adam = optax.scale_by_adam()

    def init(key, hp: SACHparams, env_params_=None) -> SACState:
        ep = env_params if env_params_ is None else env_params_
        key, k_actor, k_critic, k_env = jax.random.split(key, 4)
        obs, env_state = train_env.reset(k_env, ep)
        dummy_action = jnp.zeros((num_actions,), jnp.float32)
        params = {"actor": actor.init(k_actor, obs[0]), "critic": critic.init(k_critic, obs[0], dummy_action),
                  "log_alpha": jnp.log(hp.init_alpha)}
        example = replay.Transition(obs, jnp.zeros((config.num_envs, num_actions), jnp.float32),
                                    jnp.zeros(config.num_envs, jnp.float32), jnp.zeros(config.num_envs, bool),
                                    jnp.zeros(config.num_envs, bool), obs)
        buf = replay.init(stored_capacity(config), example)
        return SACState(params, params["critic"], params["actor"], adam.init(params), buf, env_state, obs, ep, key,
                        jnp.int32(0), jnp.int32(0))

    def loss_fn(params, target_critic, old_actor, hp: SACHparams, b: replay.Batch, key):
        k_next, k_pi = jax.random.split(key)
        log_alpha = params["log_alpha"]
        alpha = jax.lax.stop_gradient(jnp.where(hp.autotune > 0, jnp.exp(log_alpha), hp.init_alpha))

        # Critic: twin Q regressed on the soft TD target (held fixed).
        next_action, next_log_prob = actor.apply(params["actor"], b.next_obs).sample_and_log_prob(seed=k_next)
        next_q = critic.apply(target_critic, b.next_obs, next_action).min(axis=0)
        y = jax.lax.stop_gradient(soft_td_target(b, next_q, next_log_prob, alpha))
        q = critic.apply(params["critic"], b.obs, b.action)  # [num_critics, B]
        loss_q = config.num_critics * critic_loss(q, jnp.broadcast_to(y, q.shape))

        # Actor: reparameterised actions against the (fixed) current critics.
        dist = actor.apply(params["actor"], b.obs)
        if obj.uses_old:
            # log π_k of the same action through its pre-tanh value u: inverting tanh at a
            # saturated action would be inf, and the tanh Jacobian is the same for both.
            u = dist.distribution.sample(seed=k_pi)
            action, log_det = dist.bijector.forward_and_log_det(u)
            log_prob = dist.distribution.log_prob(u) - log_det
            log_prob_old = actor.apply(old_actor, b.obs).distribution.log_prob(u) - log_det
        else:
            action, log_prob = dist.sample_and_log_prob(seed=k_pi)
            log_prob_old = log_prob
        q_pi = critic.apply(jax.lax.stop_gradient(params["critic"]), b.obs, action).min(axis=0)
        loss_pi = obj.loss(log_prob, log_prob_old, q_pi, alpha=alpha, **hp.objective)

        # Temperature: move log α so that the policy's entropy tracks the target.
        target_entropy = -hp.target_entropy_scale * num_actions
        loss_alpha = -jnp.mean(log_alpha * jax.lax.stop_gradient(log_prob + target_entropy))
        total = loss_q + loss_pi + loss_alpha
        return total, {"loss/critic": loss_q, "loss/actor": loss_pi, "loss/alpha": loss_alpha, "alpha": alpha,
                       "entropy": -jnp.mean(log_prob), "q": jnp.mean(q)}

    def gradient_step(state: SACState, hp: SACHparams, key):
        """One SGD step of critics, actor and α on a fresh batch; then the target update."""
        k_sample, k_loss = jax.random.split(key)
        b = replay.sample(state.buffer, k_sample, config.batch_size, n_step=config.n_step, gamma=hp.gamma)
        grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params, state.target_critic, state.old_actor, hp, b,
                                                         k_loss)
        updates, opt_state = adam.update(grads, state.opt_state)
        # Every parameter write waits for every gradient, so the weights are updated in place.
        after = critics.zero_after(grads)
        lrs = {"actor": hp.actor_lr + after, "critic": hp.critic_lr + after,
               "log_alpha": hp.alpha_lr * hp.autotune + after}
        params = {k: jax.tree.map(lambda p, u: p - lrs[k] * u, state.params[k], updates[k]) for k in state.params}
        target = critics.polyak(state.target_critic, params["critic"], hp.tau)
        grad_steps = state.grad_steps + 1
        old_actor = state.old_actor
        if obj.uses_old:
            refresh = grad_steps % config.old_policy_period == 0
            old_actor = jax.tree.map(lambda o, n: jnp.where(refresh, n, o), old_actor, params["actor"])
        return state.replace(params=params, target_critic=target, old_actor=old_actor, opt_state=opt_state,
                             grad_steps=grad_steps), metrics

    def update_at(state: SACState, hp: SACHparams, iteration):
        ep = state.env_params
        key, k_roll, k_learn = jax.random.split(state.key, 3)
        warm = iteration < warmup_iterations  # a real branch when ``iteration`` is shared by every run

        def act_fn(obs, key):
            k_uniform, k_pi = jax.random.split(key)
            random = jax.random.uniform(k_uniform, (config.num_envs, num_actions), minval=-1.0, maxval=1.0)
            policy = actor.apply(state.params["actor"], obs).sample(seed=k_pi)
            return jnp.where(warm, random, policy)

        env_state, obs, buf, ret_sum, count = rollout(train_env, act_fn, state, ep, config.train_freq, k_roll)
        state = state.replace(env_state=env_state, obs=obs, buffer=buf)

        state, sums = critics.learn_unless(warm, lambda s, k: gradient_step(s, hp, k), state,
                                           jax.random.split(k_learn, config.gradient_steps), METRICS)
        metrics = {k: v / config.gradient_steps for k, v in sums.items()}
        metrics["episode_return"] = jnp.where(count > 0, ret_sum / jnp.maximum(count, 1), jnp.nan)
        metrics["episodes"] = count
        return state.replace(key=key, iteration=state.iteration + 1), metrics

    def update(state: SACState, hp: SACHparams):
        return update_at(state, hp, state.iteration)

    def policy(state: SACState):
        return state.params["actor"]

    def act(actor_params, obs, key, deterministic: bool = False):
        dist = actor.apply(actor_params, obs)
        return mode(dist) if deterministic else dist.sample(seed=key)

    update.gradient_step = gradient_step  # (state, hp, key) -> (state, metrics): one update alone, for benchmarks
    return Agent(name="sac", config=config, env=env, env_params=env_params, spec=spec, init=init, update=update,
                 policy=policy, act=act, default_hparams=lambda: default_hparams(obj),
                 num_iterations=num_iterations, steps_per_iteration=steps_per_iteration, eval_env=eval_env,
                 update_at=update_at)


# The names the CLI and the sweep tools look for in every agent module.
Config = SACConfig
Hparams = SACHparams
HELP = {
    "total_timesteps": "env steps per run, warm-up included",
    "num_envs": "parallel envs per run",
    "train_freq": "steps of each env per iteration",
    "gradient_steps": "gradient steps per iteration (update-to-data ratio = gradient_steps / (train_freq × num_envs))",
    "batch_size": "transitions per gradient step",
    "buffer_size": "replay capacity in transitions (capped at total_timesteps)",
    "learning_starts": "steps of each env with uniform random actions before updates start",
    "n_step": "n-step returns (1: plain TD)",
    "hidden": "hidden layer widths of actor and critics",
    "activation": "activation: " + ", ".join(nets.ACTIVATIONS),
    "critic_loss": "critic regression loss: " + ", ".join(CRITIC_LOSSES),
    "num_critics": "critics in the ensemble; targets use their minimum",
    "old_policy_period": "gradient steps between refreshes of π_k (mdpo objective)",
    "actor_lr": "actor Adam learning rate",
    "critic_lr": "critic Adam learning rate",
    "alpha_lr": "temperature Adam learning rate",
    "gamma": "discount γ",
    "tau": "Polyak coefficient of the target critics",
    "init_alpha": "initial (or, without autotune, fixed) temperature α",
    "autotune": "1: learn α towards the target entropy, 0: keep init_alpha",
    "target_entropy_scale": "target entropy = −scale × action dimension",
}

"""Proximal policy optimisation with a pluggable surrogate objective.

Schulman et al. 2017, "Proximal Policy Optimization Algorithms". One ``update`` is one
PPO iteration, written as nested ``lax.scan``s:

    rollout     scan over num_steps   (num_envs parallel envs; every step's randomness drawn before it)
    advantages  GAE, reverse scan     (truncation bootstraps, termination does not)
    fit         scan over update_epochs × num_minibatches shuffled minibatches:
                  actor   surrogate − entropy bonus     clipped to max_grad_norm, Adam
                  critic  clipped value loss            clipped to max_grad_norm, Adam

The actor and the critic share no parameters and no loss term, so by default (grad_clip =
"per_network", as in rejax) each has its own gradient clip and Adam state, and their fits
are independent: one run on two devices fits the actor on one and the critic on the other
(``rlx.parallel.spread``). grad_clip = "global" clips both gradients by their joint norm
(PureJaxRL, CleanRL, SB3); the networks then step together on one device.

The policy surrogate is any function ``loss(PolicyBatch, **hp.objective) -> scalar`` from
``rlx.objectives`` (ppo_clip, kl_penalty, mdpo, dpo, lpo, ta_lpo, ...) or your own.

    agent = ppo.make(ppo.PPOConfig(), *rlx.envs.make("CartPole-v1"), objective="ppo_clip")
    train = rlx.make_train(agent)
    state, metrics = jax.jit(jax.vmap(train))(keys, hp_batch)
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from flax import struct

from rlx import distributions, envs, nets, objectives, packing, parallel, shuffle
from rlx.advantages import gae
from rlx.agent import Agent
from rlx.config import ConfigError, check_choice, check_hidden, check_positive_int
from rlx.distributions import mode


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """Static settings: changing any of them recompiles.

    Defaults are the CartPole settings of the PPO paper's Atari/classic-control recipe
    as used by PureJaxRL and CleanRL (4 envs × 128 steps, 4 epochs × 4 minibatches).
    """

    total_timesteps: int = 500_000
    num_envs: int = 4
    num_steps: int = 128
    update_epochs: int = 4
    num_minibatches: int = 4
    hidden: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    distribution: str = "auto"  # auto | categorical | gaussian
    normalize_obs: bool = False
    normalize_advantages: bool = True
    clip_value_loss: bool = True
    log_std_init: float = 0.0
    grad_clip: str = "per_network"  # per_network | global


@struct.dataclass
class PPOHparams:
    """Dynamic hyperparameters: arrays, so a batch of them vmaps and they can be differentiated."""

    lr: jax.Array
    anneal_lr: jax.Array  # 1.0: lr decays linearly to 0 over the run; 0.0: constant
    gamma: jax.Array
    gae_lambda: jax.Array
    vf_coef: jax.Array
    vf_clip: jax.Array  # ε of the clipped value loss
    ent_coef: jax.Array
    max_grad_norm: jax.Array
    objective: dict  # keyword arguments of the surrogate (clip range, drift-net weights, ...)


@struct.dataclass
class PPOState:
    params: Any  # {"actor": ..., "critic": ...}
    opt_state: Any  # Adam's state of ravel_pytree(params): actor then critic (NETWORKS order)
    env_state: Any
    obs: jax.Array
    env_params: Any
    objective_state: dict  # coefficients an adaptive objective changes between iterations
    key: jax.Array
    iteration: jax.Array


@struct.dataclass
class Policy:
    actor: Any
    obs_mean: jax.Array | None
    obs_var: jax.Array | None


class Transition(struct.PyTreeNode):
    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    final_obs: jax.Array  # the true next observation (the episode's last one where it ended)


class Sample(struct.PyTreeNode):
    """One training sample: what the loss needs of a step."""

    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    advantage: jax.Array
    target: jax.Array


DISTRIBUTIONS = ("auto", "categorical", "gaussian")
GRAD_CLIPS = ("per_network", "global")
NETWORKS = ("actor", "critic")


def validate(config: PPOConfig, spec: envs.EnvSpec) -> None:
    """Every check that can be made before compiling."""
    owner = "PPOConfig"
    if not isinstance(config, PPOConfig):
        raise ConfigError(f"config must be a PPOConfig, got {type(config).__name__}")
    for f in ("total_timesteps", "num_envs", "num_steps", "update_epochs", "num_minibatches"):
        check_positive_int(owner, f, getattr(config, f))
    check_hidden(owner, "hidden", config.hidden)
    check_choice(owner, "activation", config.activation, nets.ACTIVATIONS)
    check_choice(owner, "distribution", config.distribution, DISTRIBUTIONS)
    check_choice(owner, "grad_clip", config.grad_clip, GRAD_CLIPS)
    batch = config.num_envs * config.num_steps
    if batch % config.num_minibatches:
        raise ConfigError(
            f"{owner}: num_envs × num_steps = {config.num_envs} × {config.num_steps} = {batch} is not divisible "
            f"by num_minibatches={config.num_minibatches}; choose num_minibatches among the divisors of {batch}")
    if config.total_timesteps < batch:
        raise ConfigError(f"{owner}.total_timesteps={config.total_timesteps} is smaller than one iteration "
                          f"(num_envs × num_steps = {batch})")
    if config.distribution == "categorical" and not spec.discrete:
        raise ConfigError(f"{owner}.distribution='categorical' is discrete-only, but the env has a continuous "
                          f"action space of dimension {spec.num_actions}; use 'gaussian' or 'auto'")
    if config.distribution == "gaussian" and spec.discrete:
        raise ConfigError(f"{owner}.distribution='gaussian' needs a continuous action space, but the env has "
                          f"{spec.num_actions} discrete actions; use 'categorical' or 'auto'")


def default_hparams(objective: objectives.Surrogate | None = None, key=None) -> PPOHparams:
    """The usual PPO hyperparameters (lr 2.5e-4 annealed, γ 0.99, λ 0.95, ε_V 0.2, c_V 0.5, c_H 0.01)."""
    surrogate = objectives.as_surrogate(objective or objectives.get("ppo_clip"))
    f = lambda x: jnp.asarray(x, jnp.float32)
    return PPOHparams(lr=f(2.5e-4), anneal_lr=f(1.0), gamma=f(0.99), gae_lambda=f(0.95), vf_coef=f(0.5),
                      vf_clip=f(0.2), ent_coef=f(0.01), max_grad_norm=f(0.5),
                      objective=surrogate.init(jax.random.PRNGKey(0) if key is None else key))


DEFAULT_OBJECTIVE = "ppo_clip"


def make(config: PPOConfig, env, env_params, objective: str | Callable | objectives.Surrogate = "ppo_clip") -> Agent:
    """Build the PPO agent for ``env``; validates everything before any tracing."""
    spec = envs.spec(env, env_params)
    validate(config, spec)
    surrogate = objectives.get(objective) if isinstance(objective, str) else objectives.as_surrogate(objective)
    discrete = spec.discrete
    batch_size = config.num_envs * config.num_steps
    minibatch_size = batch_size // config.num_minibatches
    num_updates = config.update_epochs * config.num_minibatches
    num_iterations = config.total_timesteps // batch_size
    horizon = jnp.float32(num_iterations)

    obs_ndim = max(1, len(spec.obs_shape))  # image observations (MinAtar) are flattened
    if discrete:
        actor = nets.CategoricalPolicy(spec.num_actions, config.hidden, config.activation, obs_ndim)
    else:
        actor = nets.GaussianPolicy(spec.num_actions, config.hidden, config.activation, config.log_std_init, obs_ndim)
    critic = nets.ValueNet(config.hidden, config.activation, obs_ndim)

    # The env stack: continuous actions are clipped to the box; statistics of the optional
    # observation normaliser live in the env state and travel with the policy.
    eval_env = env if discrete else envs.ClipAction(env, spec.action_low, spec.action_high)
    vec_env = envs.VecEnv(eval_env, config.num_envs)
    train_env = envs.NormalizeObservation(vec_env) if config.normalize_obs else vec_env
    adam = optax.scale_by_adam(eps=1e-5)

    def init(key, hp: PPOHparams, env_params_=None) -> PPOState:
        ep = env_params if env_params_ is None else env_params_
        key, k_actor, k_critic, k_env = jax.random.split(key, 4)
        dummy = jnp.zeros(spec.obs_shape, jnp.float32)
        params = {"actor": actor.init(k_actor, dummy), "critic": critic.init(k_critic, dummy)}
        obs, env_state = train_env.reset(k_env, ep)
        adapted = surrogate.adapt_init(hp.objective) if surrogate.adapt_init else {}
        return PPOState(params, adam.init(ravel_pytree(params)[0]), env_state, obs, ep, adapted, key, jnp.int32(0))

    def actor_loss(actor_params, hp, mb: Sample, progress, objective_hp):
        """The surrogate minus the entropy bonus, and the actor's metrics."""
        dist = actor.apply(actor_params, mb.obs)
        log_ratio = dist.log_prob(mb.action) - mb.log_prob
        advantage = mb.advantage
        if config.normalize_advantages:
            advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
        policy_loss = surrogate.loss(objectives.PolicyBatch(log_ratio, advantage, progress, horizon), **objective_hp)
        entropy = dist.entropy().mean()
        ratio = jnp.exp(log_ratio)
        return policy_loss - hp.ent_coef * entropy, {
            "loss/policy": policy_loss, "loss/entropy": entropy, "approx_kl": objectives.kl_old_new(log_ratio).mean(),
            "clip_fraction": (jnp.abs(ratio - 1.0) > 0.2).mean()}

    def critic_loss(critic_params, hp, mb: Sample, progress, objective_hp):
        """vf_coef × the (clipped) value loss, and the critic's metric."""
        value = critic.apply(critic_params, mb.obs)
        if config.clip_value_loss:
            value_loss = objectives.clipped_value_loss(value, mb.value, mb.target, epsilon=hp.vf_clip)
        else:
            value_loss = 0.5 * objectives.squared_error(value, mb.target)
        return hp.vf_coef * value_loss, {"loss/value": value_loss}

    losses = {"actor": actor_loss, "critic": critic_loss}
    # Where each network sits in the flat parameter vector (ravel_pytree orders dict keys: actor, critic).
    shapes = {name: jax.eval_shape(net.init, jax.random.PRNGKey(0), jnp.zeros(spec.obs_shape))
              for name, net in (("actor", actor), ("critic", critic))}
    ends = np.cumsum([sum(math.prod(x.shape) for x in jax.tree.leaves(shapes[name])) for name in NETWORKS])
    segment = {name: (int(end - size), int(end)) for name, end, size in
               zip(NETWORKS, ends, np.diff(np.concatenate([[0], ends])))}

    def update(state: PPOState, hp: PPOHparams):
        ep = state.env_params
        progress = state.iteration.astype(jnp.float32) / horizon

        # 1. Rollout: num_steps steps of num_envs envs. Every step's randomness (the env's keys
        # and resets, the action noise) is drawn first, in a few batched calls: tiny random
        # draws inside the loop cost more than the env itself. The loop carries only what the
        # next step needs; values and log-probabilities come afterwards in one batched pass.
        key, k_env, k_act, k_shuffle = jax.random.split(state.key, 4)
        env_draws = train_env.presample(k_env, ep, config.num_steps)
        action_noise = distributions.noise(k_act, actor.apply(state.params["actor"], state.obs),
                                           (config.num_steps, config.num_envs))

        def env_step(carry, draws):
            env_state, obs, ep_return_sum, ep_count = carry
            env_draw, eps = draws
            action = distributions.sample_from_noise(actor.apply(state.params["actor"], obs), eps)
            next_obs, env_state, reward, terminated, truncated, info = train_env.step(env_draw, env_state, action, ep)
            t = Transition(obs, action, reward.astype(jnp.float32), terminated, truncated, info["final_observation"])
            carry = (env_state, next_obs, ep_return_sum + info["episode_return"].sum(),
                     ep_count + info["episode_done"].sum())
            return carry, t

        # The loop carries the env state packed into one buffer per dtype (rlx.packing): on small
        # envs the kernels per step, not the arithmetic, set the rollout's speed.
        carry = (state.env_state, state.obs, jnp.float32(0.0), jnp.int32(0))
        draws = (env_draws, action_noise)
        (env_state, obs, ep_return_sum, ep_count), traj = packing.scan(env_step, carry, draws)

        # 2. Advantages. final_obs[t] is the true next state s'_t (the last observation of an
        # episode that ended at t), so one batched critic pass gives V(s'_t) for every t.
        value = critic.apply(state.params["critic"], traj.obs)
        next_value = critic.apply(state.params["critic"], traj.final_obs)
        old_log_prob = actor.apply(state.params["actor"], traj.obs).log_prob(traj.action)
        advantage, target = gae(traj.reward, value, next_value, traj.terminated, traj.truncated,
                                gamma=hp.gamma, lam=hp.gae_lambda)

        # 3. update_epochs passes over the batch in shuffled minibatches, the same minibatches
        # for both networks: every epoch's shuffle is one gather made up front (rlx.shuffle, not
        # jax.random.permutation, whose two-array sort is slow on CPU: 80k → 87k env-steps/s).
        objective_hp = {**hp.objective, **state.objective_state}
        lr = hp.lr * (1.0 - hp.anneal_lr * progress)
        samples = Sample(traj.obs, traj.action, old_log_prob, value, advantage, target)
        samples = jax.tree.map(lambda x: x.reshape((batch_size,) + x.shape[2:]), samples)
        order = jax.vmap(lambda k: shuffle.permutation(k, batch_size))(
            jax.random.split(k_shuffle, config.update_epochs)).reshape(-1)
        minibatches = jax.tree.map(
            lambda x: x[order].reshape((num_updates, minibatch_size) + x.shape[1:]), samples)

        def fit(names):
            """SGD on the networks in ``names`` over every minibatch: {name: (params, opt_state, metrics)}.

            The parameters of all networks are one flat vector with one Adam state (NETWORKS
            order); a fit works on the segment of its networks, so clipping, Adam and the step are
            a few kernels per minibatch, not a few per weight matrix. Adam is elementwise: the
            numbers are those of one optimiser per network.
            """
            lo, hi = segment[names[0]][0], segment[names[-1]][1]
            flat, unflatten = ravel_pytree({name: state.params[name] for name in names})
            adam_state = jax.tree.map(lambda x: x[lo:hi] if x.ndim else x, state.opt_state)
            bounds = [(segment[name][0] - lo, segment[name][1] - lo) for name in names]
            clip = optax.clip_by_global_norm(hp.max_grad_norm)

            def minibatch_step(carry, mb):
                flat, adam_state = carry

                def loss(flat):
                    params = unflatten(flat)
                    terms = {name: losses[name](params[name], hp, mb, progress, objective_hp) for name in names}
                    return sum(t[0] for t in terms.values()), {name: t[1] for name, t in terms.items()}

                grads, metrics = jax.grad(loss, has_aux=True)(flat)
                if config.grad_clip == "global":
                    grads = clip.update(grads, optax.EmptyState())[0]
                elif len(names) > 1:
                    grads = jnp.concatenate([clip.update(grads[a:b], optax.EmptyState())[0] for a, b in bounds])
                else:
                    grads = clip.update(grads, optax.EmptyState())[0]
                updates, adam_state = adam.update(grads, adam_state)
                return (flat - lr * updates, adam_state), metrics

            (flat, adam_state), metrics = jax.lax.scan(minibatch_step, (flat, adam_state), minibatches)
            params = unflatten(flat)
            return {name: (params[name], jax.tree.map(lambda x: x[a:b] if x.ndim else x, adam_state),
                           jax.tree.map(jnp.mean, metrics[name])) for name, (a, b) in zip(names, bounds)}

        # Independent fits may run on separate devices; a global clip ties them together.
        fitted = parallel.spread(fit, NETWORKS) if config.grad_clip == "per_network" else fit(NETWORKS)
        params = {name: fitted[name][0] for name in NETWORKS}
        opt_state = jax.tree.map(lambda *xs: jnp.concatenate(xs) if xs[0].ndim else xs[0],
                                 *[fitted[name][1] for name in NETWORKS])
        metrics = {**fitted["actor"][2], **fitted["critic"][2]}

        # 4. Adaptive objectives (e.g. adaptive KL) move their coefficients once per iteration.
        objective_state = state.objective_state
        if surrogate.adapt:
            objective_state = surrogate.adapt(objective_state, hp.objective, metrics["approx_kl"])

        metrics["episode_return"] = jnp.where(ep_count > 0, ep_return_sum / jnp.maximum(ep_count, 1), jnp.nan)
        metrics["episodes"] = ep_count
        metrics["lr"] = lr
        state = PPOState(params, opt_state, env_state, obs, ep, objective_state, key, state.iteration + 1)
        return state, metrics

    def policy(state: PPOState) -> Policy:
        if config.normalize_obs:
            return Policy(state.params["actor"], state.env_state.mean, state.env_state.var)
        return Policy(state.params["actor"], None, None)

    def act(pol: Policy, obs, key, deterministic: bool = False):
        if pol.obs_mean is not None:
            obs = envs.normalize(obs, pol.obs_mean, pol.obs_var)
        dist = actor.apply(pol.actor, obs)
        return mode(dist) if deterministic else dist.sample(seed=key)

    return Agent(name="ppo", config=config, env=env, env_params=env_params, spec=spec, init=init, update=update,
                 policy=policy, act=act, default_hparams=lambda: default_hparams(surrogate),
                 num_iterations=num_iterations, steps_per_iteration=batch_size, eval_env=eval_env,
                 parts=len(NETWORKS) if config.grad_clip == "per_network" else 1)


# The names the CLI and the sweep tools look for in every agent module.
Config = PPOConfig
Hparams = PPOHparams
HELP = {
    "total_timesteps": "env steps per run (the schedule horizon)",
    "num_envs": "parallel envs per run",
    "num_steps": "rollout length per env and iteration",
    "update_epochs": "passes over each rollout",
    "num_minibatches": "minibatches per epoch; must divide num_envs × num_steps",
    "hidden": "hidden layer widths of actor and critic",
    "activation": "activation: " + ", ".join(nets.ACTIVATIONS),
    "distribution": "action distribution: " + ", ".join(DISTRIBUTIONS),
    "normalize_obs": "running observation normalisation",
    "normalize_advantages": "normalise advantages per minibatch",
    "clip_value_loss": "PPO's clipped value loss (else plain squared error)",
    "log_std_init": "initial log σ of the Gaussian policy",
    "lr": "Adam learning rate",
    "anneal_lr": "1: decay lr linearly to 0 over the run, 0: constant",
    "gamma": "discount γ",
    "gae_lambda": "GAE λ",
    "vf_coef": "value-loss coefficient",
    "vf_clip": "clip range of the clipped value loss",
    "ent_coef": "entropy-bonus coefficient",
    "max_grad_norm": "gradient-norm clip (see grad_clip)",
    "grad_clip": "per_network: clip actor and critic gradients separately (their fits are then independent "
                 "and one run spreads over two devices); global: clip by their joint norm",
}

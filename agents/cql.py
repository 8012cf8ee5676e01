"""Conservative Q-learning, CQL(H), on soft actor-critic: offline RL that pushes Q down off the data.

Kumar et al. 2020, "Conservative Q-Learning for Offline Reinforcement Learning" (the SAC-based
CQL(H) of its continuous-control experiments, with the importance-sampled log-sum-exp of its
appendix F). One ``update`` is ``steps_per_iteration`` gradient steps in a ``lax.scan``, each on a
fresh uniform batch of the dataset; every loss is computed from the same parameters and applied
together (they touch disjoint parameters). Actions live in [−1, 1]^A (|A| = action dimension):

    sampled   per state s, N actions from each of   U[−1, 1]^A,   π(·|s'),   π(·|s)   (held fixed)
              q̃_i(s) = [Q_i(s, a_u) − log 0.5^|A|,  Q_i(s, a') − log π(a'|s'),  Q_i(s, a) − log π(a|s)]   [3N]
    gap       g_i = mean_s( T·logsumexp(q̃_i(s)/T) − Q_i(s, a_data) )                    T = 1
    critic    Σ_i mean((Q_i(s,a) − y)²) + Σ_i c_i,   y = r + γ(1 − terminated)·min_i Q̄_i(s', a'), a' ~ π(·|s')
                fixed weight   c_i = w·g_i                                                  w = 5
                lagrange       c_i = α'·(g_i − τ_gap),   α' = clip(exp(log α'), 0, 1e6)      τ_gap = 10
    α'        −α'·(mean_i g_i − τ_gap)           (lagrange only: α' grows while the gap is above τ_gap)
    actor     mean(α·log π(a|s) − min_i Q_i(s, a)),  a ~ π(·|s) reparameterised   (SAC's actor)
                the first ``bc_steps`` steps: mean(α·log π(a|s) − log π(a_data|s))      (BC warm-start)
    α         −mean(log α · (log π(a|s) − |A|·target_entropy_scale))                (SAC's temperature)
    targets   Q̄ ← Q̄ + τ_polyak (Q − Q̄)

The target has no entropy term (CQL's ``backup_entropy`` off). The learning rates are the CQL
paper's: actor 1e-4, critics 3e-4; Adam's steps are scaled by hand so every rate stays a dynamic
hyperparameter. Under ``lagrange`` the fixed weight w is not used: α' replaces it. τ_gap = 10 is
the paper's choice for the MuJoCo locomotion tasks (its code suggests 5 for Adroit and Kitchen);
the gap is in units of Q, so rescale it with the rewards. The BC warm-start of the paper's code
(``policy_eval_start``, 10k–40k steps) is off by default (``bc_steps = 0``).

The dataset lives in the agent (a constant of the program, shared by every vmapped run); it is
prepared once by :func:`rlx.data.prepare`. Evaluation rescales [−1, 1] back to the env's bounds
and acts with tanh of the Gaussian's mean.

    ds = rlx.data.load("pendulum-medium.npz")
    agent = cql.make(cql.CQLConfig(lagrange=True), ds, *rlx.envs.make("Pendulum-v1"))
    state, metrics = jax.jit(jax.vmap(rlx.make_train(agent), in_axes=(0, None)))(keys, agent.default_hparams())
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from rlx import critics, data, envs, nets, objectives
from rlx.agent import Agent
from rlx.config import ConfigError, check_offline
from rlx.distributions import mode


@dataclasses.dataclass(frozen=True)
class CQLConfig:
    """Static settings (CQL paper defaults: 256×256, batch 256, N = 10 sampled actions per source)."""

    total_steps: int = 100_000  # gradient steps per run
    steps_per_iteration: int = 1_000
    batch_size: int = 256
    hidden: tuple[int, ...] = (256, 256)
    normalize_obs: bool = False  # standardise observations by the dataset's statistics
    reward_scale: str = "none"  # none | episode_range: × 1000/(max − min episode return), for locomotion
    lagrange: bool = False  # learn the penalty weight α' so the gap tracks target_gap
    num_sampled_actions: int = 10  # N per source (uniform, π(·|s'), π(·|s)): 3N in the log-sum-exp
    num_critics: int = 2
    bc_steps: int = 0  # first gradient steps whose actor loss is behaviour cloning (the paper's warm-start)


@struct.dataclass
class CQLHparams:
    """Dynamic hyperparameters: scalar float32 arrays (each one a CLI flag and a sweep axis)."""

    actor_lr: jax.Array
    critic_lr: jax.Array
    alpha_lr: jax.Array  # SAC temperature α
    cql_alpha_lr: jax.Array  # Lagrange multiplier α' (lagrange only)
    gamma: jax.Array
    polyak: jax.Array
    init_alpha: jax.Array
    autotune: jax.Array  # 1.0: learn α towards the target entropy; 0.0: α stays init_alpha
    target_entropy_scale: jax.Array  # target entropy = −scale·|A|
    cql_weight: jax.Array  # w of the fixed-weight variant
    cql_temperature: jax.Array  # T of the log-sum-exp
    target_gap: jax.Array  # τ_gap of the Lagrange variant
    init_cql_alpha: jax.Array  # α' at the start (lagrange only)


@struct.dataclass
class CQLState:
    params: Any  # {"actor", "critic", "log_alpha"[, "log_cql_alpha"]}
    target_critic: Any
    opt_state: Any
    key: jax.Array
    iteration: jax.Array


@struct.dataclass
class Policy:
    actor: Any
    obs_mean: jax.Array
    obs_std: jax.Array


REWARD_SCALES = data.REWARD_SCALES
MAX_CQL_ALPHA = 1e6  # α' is clipped to [0, 1e6], as in the paper's code
BC_ACTION_EPS = 1e-5  # data actions are pulled this far inside (−1, 1) before tanh is inverted


def validate(config: CQLConfig, spec: envs.EnvSpec, dataset: data.Dataset) -> None:
    """Every check that can be made before compiling; errors name the field and what it accepts."""
    check_offline(config, CQLConfig, spec, agent="CQL", dataset=dataset,
                  positive_ints=("num_sampled_actions", "num_critics"), bools=("lagrange",),
                  choices={"reward_scale": REWARD_SCALES})
    if isinstance(config.bc_steps, bool) or not isinstance(config.bc_steps, int) or config.bc_steps < 0:
        raise ConfigError(f"CQLConfig.bc_steps={config.bc_steps!r}: must be a non-negative integer")
    if config.bc_steps >= config.total_steps:
        raise ConfigError(f"CQLConfig.bc_steps={config.bc_steps} must be below total_steps={config.total_steps}, "
                          "or the actor never sees the critic")


def default_hparams() -> CQLHparams:
    """CQL paper: actor lr 1e-4, critic and α lr 3e-4, γ 0.99, τ 0.005, w = 5, T = 1, τ_gap = 10."""
    f = lambda x: jnp.asarray(x, jnp.float32)
    return CQLHparams(actor_lr=f(1e-4), critic_lr=f(3e-4), alpha_lr=f(3e-4), cql_alpha_lr=f(3e-4), gamma=f(0.99),
                      polyak=f(0.005), init_alpha=f(1.0), autotune=f(1.0), target_entropy_scale=f(1.0),
                      cql_weight=f(5.0), cql_temperature=f(1.0), target_gap=f(10.0), init_cql_alpha=f(1.0))


def importance_corrected_q(q_uniform, q_next_pi, q_pi, log_prob_next_pi, log_prob_pi, action_dim: int):
    """The log-sum-exp's inputs: Q at the sampled actions minus the log density they were drawn from.

    Args:
      q_uniform, q_next_pi, q_pi: [..., B, N] Q(s, ·) at actions drawn from U[−1, 1]^A, π(·|s'), π(·|s).
      log_prob_next_pi, log_prob_pi: [B, N] log π(a'|s'), log π(a|s) of those actions (broadcast).
      action_dim: |A|; the uniform density on [−1, 1]^A is 0.5^|A|.
    Returns:
      [..., B, 3N]: [Q_u − |A|·log 0.5, Q_{π(s')} − log π(a'|s'), Q_{π(s)} − log π(a|s)].
    """
    log_uniform = action_dim * math.log(0.5)
    return jnp.concatenate([q_uniform - log_uniform, q_next_pi - log_prob_next_pi, q_pi - log_prob_pi], axis=-1)


def cql_gaps(q_data, q_sampled, temperature):
    """Per-critic gap g_i = mean_s(T·logsumexp(q̃_i/T) − Q_i(s, a_data)): [C, B], [C, B, M] → [C]."""
    return jax.vmap(lambda qd, qs: objectives.cql_penalty(qd, qs, temperature=temperature))(q_data, q_sampled)


def cql_alpha_value(log_cql_alpha):
    """α' = clip(exp(log α'), 0, 1e6)."""
    return jnp.clip(jnp.exp(log_cql_alpha), 0.0, MAX_CQL_ALPHA)


def lagrange_loss(cql_alpha, gaps, target_gap):
    """The multiplier's loss −α'·(mean_i g_i − τ_gap): descending it raises α' while the gap exceeds τ_gap."""
    return -cql_alpha * (jnp.mean(jax.lax.stop_gradient(gaps)) - target_gap)


def make(config: CQLConfig, dataset: data.Dataset, env, env_params, name: str = "cql") -> Agent:
    """Build CQL(H) (fixed weight, or ``config.lagrange``) on ``dataset``; validates before tracing."""
    spec = envs.spec(env, env_params)
    validate(config, spec, dataset)
    prep = data.prepare(dataset, env, env_params, normalize_obs=config.normalize_obs,
                        reward_scale=config.reward_scale)
    ds, obs_mean, obs_std = prep.data, prep.obs_mean, prep.obs_std
    num_actions = spec.num_actions
    n = config.num_sampled_actions

    actor = nets.TanhGaussianPolicy(num_actions, config.hidden, "relu")
    critic = critics.QEnsemble(config.hidden, "relu", config.num_critics)
    num_iterations = config.total_steps // config.steps_per_iteration
    adam = optax.scale_by_adam()  # learning rates are applied by hand, so they stay dynamic hyperparameters

    def init(key, hp: CQLHparams, env_params_=None) -> CQLState:
        k_a, k_c, key = jax.random.split(key, 3)
        obs, act = ds.obs[:1], ds.action[:1]
        params = {"actor": actor.init(k_a, obs), "critic": critic.init(k_c, obs, act),
                  "log_alpha": jnp.log(hp.init_alpha)}
        if config.lagrange:
            params["log_cql_alpha"] = jnp.log(hp.init_cql_alpha)
        return CQLState(params, params["critic"], adam.init(params), key, jnp.int32(0))

    def losses(params, target_critic, hp: CQLHparams, batch, key, step):
        k_next, k_u, k_next_n, k_cur_n, k_pi = jax.random.split(key, 5)
        sg = jax.lax.stop_gradient
        alpha = sg(jnp.where(hp.autotune > 0, jnp.exp(params["log_alpha"]), hp.init_alpha))
        frozen_actor = sg(params["actor"])
        b = batch.reward.shape[0]

        # TD target, no entropy term: y = r + γ(1 − terminated)·min_i Q̄_i(s', a'), a' ~ π(·|s').
        dist_next = actor.apply(frozen_actor, batch.next_obs)
        next_action = dist_next.sample(seed=k_next)
        next_q = critic.apply(target_critic, batch.next_obs, next_action).min(0)
        y = sg(batch.reward + hp.gamma * (1.0 - batch.terminated) * next_q)

        # Sampled actions (constants for the critic): N each from U[−1, 1]^A, π(·|s'), π(·|s).
        dist = actor.apply(frozen_actor, batch.obs)
        a_u = jax.random.uniform(k_u, (b, n, num_actions), minval=-1.0, maxval=1.0)
        a_next, logp_next = dist_next.sample_and_log_prob(seed=k_next_n, sample_shape=(n,))  # [N, B, A], [N, B]
        a_cur, logp_cur = dist.sample_and_log_prob(seed=k_cur_n, sample_shape=(n,))
        a_next, logp_next, a_cur, logp_cur = (sg(jnp.swapaxes(x, 0, 1)) for x in (a_next, logp_next, a_cur, logp_cur))
        # One critic call on [B, 1 + 3N] actions per state: the data action, then the samples.
        actions = jnp.concatenate([batch.action[:, None], a_u, a_next, a_cur], axis=1)
        obs_rep = jnp.broadcast_to(batch.obs[:, None], (b, 1 + 3 * n) + batch.obs.shape[1:])
        flat = lambda x: x.reshape((b * (1 + 3 * n),) + x.shape[2:])
        q_all = critic.apply(params["critic"], flat(obs_rep), flat(actions)).reshape(-1, b, 1 + 3 * n)  # [C, B, 1+3N]
        q = q_all[..., 0]
        q_sampled = importance_corrected_q(q_all[..., 1:1 + n], q_all[..., 1 + n:1 + 2 * n], q_all[..., 1 + 2 * n:],
                                           logp_next, logp_cur, num_actions)
        gaps = cql_gaps(q, q_sampled, hp.cql_temperature)  # [C]
        bellman = jnp.sum(jax.vmap(objectives.squared_error, in_axes=(0, None))(q, y))
        if config.lagrange:
            cql_alpha = cql_alpha_value(params["log_cql_alpha"])
            penalty = sg(cql_alpha) * jnp.sum(gaps - hp.target_gap)
            loss_cql_alpha = lagrange_loss(cql_alpha, gaps, hp.target_gap)
        else:
            cql_alpha = hp.cql_weight
            penalty = hp.cql_weight * jnp.sum(gaps)
            loss_cql_alpha = jnp.float32(0.0)

        # Actor: SAC's reparameterised loss against the (fixed) current critics; BC first, if asked.
        dist_pi = actor.apply(params["actor"], batch.obs)
        a_pi, logp_pi = dist_pi.sample_and_log_prob(seed=k_pi)
        q_pi = critic.apply(sg(params["critic"]), batch.obs, a_pi).min(0)
        loss_actor = objectives.sac_actor(logp_pi, q_pi, alpha=alpha)
        if config.bc_steps > 0:
            logp_data = dist_pi.log_prob(jnp.clip(batch.action, -1.0 + BC_ACTION_EPS, 1.0 - BC_ACTION_EPS))
            loss_bc = jnp.mean(alpha * logp_pi - logp_data)
            loss_actor = jnp.where(step < config.bc_steps, loss_bc, loss_actor)

        # Temperature: move log α so that the policy's entropy tracks −scale·|A|.
        target_entropy = -hp.target_entropy_scale * num_actions
        loss_alpha = -jnp.mean(params["log_alpha"] * sg(logp_pi + target_entropy))

        total = bellman + penalty + loss_actor + loss_alpha + loss_cql_alpha
        return total, {"loss/critic": bellman, "loss/cql": penalty, "loss/actor": loss_actor,
                       "loss/alpha": loss_alpha, "loss/cql_alpha": loss_cql_alpha, "alpha": alpha,
                       "cql_alpha": cql_alpha, "cql_gap": jnp.mean(gaps), "entropy": -jnp.mean(logp_pi),
                       "q": jnp.mean(q), "q_policy": jnp.mean(q_pi)}

    def grad_step(carry, key):
        params, target_critic, opt_state, step, hp = carry
        k_batch, k_loss = jax.random.split(key)
        batch = ds.sample(k_batch, config.batch_size)
        grads, metrics = jax.grad(losses, has_aux=True)(params, target_critic, hp, batch, k_loss, step)
        updates, opt_state = adam.update(grads, opt_state)
        lrs = {"actor": hp.actor_lr, "critic": hp.critic_lr, "log_alpha": hp.alpha_lr * hp.autotune,
               "log_cql_alpha": hp.cql_alpha_lr}
        params = {k: jax.tree.map(lambda p, u: p - lrs[k] * u, params[k], updates[k]) for k in params}
        target_critic = critics.polyak(target_critic, params["critic"], hp.polyak)
        return (params, target_critic, opt_state, step + 1, hp), metrics

    def update(state: CQLState, hp: CQLHparams):
        key, k_steps = jax.random.split(state.key)
        step0 = state.iteration * config.steps_per_iteration
        carry = (state.params, state.target_critic, state.opt_state, step0, hp)
        (params, target_critic, opt_state, _, _), metrics = jax.lax.scan(
            grad_step, carry, jax.random.split(k_steps, config.steps_per_iteration))
        state = CQLState(params, target_critic, opt_state, key, state.iteration + 1)
        return state, jax.tree.map(jnp.mean, metrics)

    def policy(state: CQLState) -> Policy:
        return Policy(state.params["actor"], obs_mean, obs_std)

    def act(pol: Policy, obs, key, deterministic: bool = False):
        dist = actor.apply(pol.actor, (obs - pol.obs_mean) / pol.obs_std)
        return mode(dist) if deterministic else dist.sample(seed=key)

    eval_env = envs.RescaleAction(env, prep.action_low, prep.action_high)
    return Agent(name=name, config=config, env=env, env_params=env_params, spec=spec, init=init, update=update,
                 policy=policy, act=act, default_hparams=default_hparams, num_iterations=num_iterations,
                 steps_per_iteration=config.steps_per_iteration, eval_env=eval_env)


Config = CQLConfig
Hparams = CQLHparams
HELP = {
    "total_steps": "gradient steps per run",
    "steps_per_iteration": "gradient steps per update call (the granularity of evaluations and logs)",
    "batch_size": "transitions per gradient step",
    "hidden": "hidden layer widths of actor and critics",
    "normalize_obs": "standardise observations by the dataset's mean and std",
    "reward_scale": "none, or episode_range: rewards × 1000/(max − min episode return) (locomotion)",
    "lagrange": "learn the penalty weight α' so the CQL gap tracks target_gap (else the fixed cql_weight)",
    "num_sampled_actions": "N actions per source (uniform, π(·|s'), π(·|s)) in the log-sum-exp",
    "num_critics": "critics in the ensemble; targets and the actor use their minimum",
    "bc_steps": "first gradient steps whose actor loss is behaviour cloning (0: no warm-start)",
    "actor_lr": "actor Adam learning rate",
    "critic_lr": "critic Adam learning rate",
    "alpha_lr": "SAC temperature α Adam learning rate",
    "cql_alpha_lr": "Lagrange multiplier α' Adam learning rate (lagrange only)",
    "gamma": "discount γ",
    "polyak": "target-critic Polyak rate τ",
    "init_alpha": "initial (or, without autotune, fixed) SAC temperature α",
    "autotune": "1: learn α towards the target entropy, 0: keep init_alpha",
    "target_entropy_scale": "target entropy = −scale × action dimension",
    "cql_weight": "fixed CQL penalty weight w (unused with lagrange)",
    "cql_temperature": "log-sum-exp temperature T",
    "target_gap": "Lagrange threshold τ: the gap (logsumexp − Q on data) α' steers towards, in Q units",
    "init_cql_alpha": "initial Lagrange multiplier α' (lagrange only)",
}

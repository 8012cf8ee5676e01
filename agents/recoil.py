"""ReCOIL: offline imitation from a few expert transitions plus any suboptimal data, without rewards.

Sikchi, Zheng, Zhang & Niekum 2024, "Dual RL: Unification and New Methods for Reinforcement
and Imitation Learning" (ICLR), section on ReCOIL ("RElaxed Coverage for Off-policy
Imitation Learning"). Data: a small expert set D^E and a large suboptimal set D^S of any
quality; neither's rewards are read.

The problem. Earlier dual imitation methods (SMODICE, ...) match d^π to d^E and estimate
through D^S, so D^S must cover the expert's visitation. ReCOIL matches two mixtures that
share the suboptimal part, whose ratio is defined wherever D^S or D^E is, for β ∈ (0, 1]:

    max_π  −D_f( β·d^π + (1−β)·d^S  ‖  β·d^E + (1−β)·d^S )

Its dual (Lagrange multiplier Q on the Bellman-flow constraints of d^π, change of
variable to the mixture d̃ = β·d^π + (1−β)·d^S, the convex conjugate f* for the max over d̃,
Q rescaled by 1/β) is unconstrained:

    max_π min_Q  β(1−γ)·E_{s0∼d0, a∼π}[Q(s0,a)]
                 + E_{d^mix_{E,S}}[ f*(γ·P^πQ(s,a) − Q(s,a)) ]
                 − (1−β)·E_{d^S}[ γ·P^πQ(s,a) − Q(s,a) ],      d^mix_{E,S} = β·d^E + (1−β)·d^S

With Pearson χ² (f*(x) = x + x²/4) the linear part of f*, taken over the mixture, cancels
the last term and leaves β·E_{d^E}[γ·P^πQ − Q]; the initial-state term telescopes over the
expert's own occupancy ((1−γ)·E_{d0}[V] = E_{d^E}[V(s) − γV(s')], V(s) = E_{a∼π}Q(s,a)),
leaving, with V held fixed,

    L(Q) = −β·E_{d^E}[Q(s,a)] + ¼·E_{d^mix_{E,S}}[(Q(s,a) − γ·V(s'))²]

whose pointwise minimiser is Q = γV(s') + 2β·d^E/d^mix: an implicit reward, the density
ratio of expert to mixture, in [0, 2] — no discriminator. V replaces the policy's
expectation P^πQ by an implicit in-sample maximum of Q over the mixture, as in f-DVL/XQL.

What this module optimises (each gradient step: B transitions from D^E and B from D^S; a
mixture expectation is the weighted sum E_mix[g] = β·mean_E[g] + (1−β)·mean_S[g], exact
in expectation, so β is a weight and not a sampling ratio; Q̄ = min of the twin target
critics, u = Q̄(s,a) − V(s), m = 1 − terminated):

    Q       Σ_i  β·mean_E[(Q_i(s,a) − c)²]  +  E_mix[(Q_i(s,a) − y)²],   c = r_E/(1−γ)
            y = r̃ + γ·(m·V(s') + (1 − m)·r̃/(1−γ))
    V       E_mix[ℓ(u)],  ℓ = Gumbel (XQL's stable form, temperature T) or expectile (τ)
    actor   −E_mix[min(exp(β_awr·u), w_max) · log π(a|s)]                 (AWR, as IQL)
    targets Q̄ ← Q̄ + τ_polyak·(Q − Q̄)

The Q loss is the authors' practical form of the χ² dual (their released code, file
critic_imitate.py: Q pulled to 200 on expert pairs, Bellman target −2 + γ·V(s') with −200
at terminals, γ = 0.99): the unbounded linear pull −β·E_E[Q] becomes a bounded squared
pull to a high constant c (the LS-IQ stability trick, Al-Hafez et al. 2023), written here
as c = r_E/(1−γ) (``expert_reward`` r_E: the value of earning r_E forever, so c follows γ
in a sweep), and the mixture's Bellman target carries a constant reward-free shift
r̃ < 0 (``shift``); a terminal transition bootstraps from the absorbing value r̃/(1−γ),
doing no better than D^S forever. The authors' constants are r_E = 2, r̃ = −2; scaling
both by k scales Q and V by k, the same as dividing T and β_awr by k, and the defaults
r_E = 1, r̃ = −1 put one step of reward at scale 1, like IQL's normalised rewards. The pointwise
minimiser, with ρ = β·d^E/d^mix ∈ [0, 1], is Q = y + ρ/(1+ρ)·(c − y): Bellman with reward
r̃ on pairs only D^S shows, pulled halfway to c on pairs only the expert shows, monotone
in the density ratio as in the exact dual. Deliberate differences from the authors' code:
their Bellman term and V loss use the D^S half of the batch only (their D^S holds expert
trajectories too) and their expert half gets the pull only; here both use the β-mixture
the paper defines. Their expectile variant also adds β·(E_S[V] − E_E[V]) to the V loss,
and they offer random-action and gradient-penalty options; none of that is here.

Measured on Pendulum-v1 (tests/test_recoil.py: D^E = 5 expert episodes scoring 106, D^S =
20k random + 20k medium transitions scoring 9.5; normalised final scores of 2 seeds):
8k steps, 128×128 networks, batch 128 + 128, defaults but γ = 0.9: ReCOIL 57 and 64 (46
and 63 in another batching), BC on D^E ∪ D^S 0 and −10, BC on D^E alone 98 and 95 (five
expert episodes are enough on Pendulum). The critic is what helps: β_awr = 0 (BC on the
β-mixture) scores 16 and 2. At that budget γ = 0.99 scores −15 and −12: the critic
values spinning through the top, where the expert bonus generalises, and the policy
spins; 256×256 networks for 20k steps at γ = 0.99 scored 93 (one seed).

All three losses come from the same parameters in one gradient (they touch disjoint
parameters, as in ``agents.iql``); learning rates are applied by hand so they are dynamic
hyperparameters, and the actor's decays with a cosine. Observations are standardised
(optional) by the statistics of D^E ∪ D^S, actions mapped to [−1, 1] by the env's bounds.

    agent = recoil.make(recoil.ReCOILConfig(), expert_ds, suboptimal_ds, *rlx.envs.make("Pendulum-v1"))
    state, metrics = jax.jit(rlx.make_train(agent))(key, agent.default_hparams())
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from rlx import critics, data, envs, nets, objectives
from rlx.agent import Agent
from rlx.agents.iql import GaussianActor, Policy, gaussian_act, gaussian_log_prob
from rlx.config import ConfigError, check_offline

VALUE_LOSSES = ("gumbel", "expectile")


@dataclasses.dataclass(frozen=True)
class ReCOILConfig:
    """Static settings."""

    total_steps: int = 100_000  # gradient steps per run
    steps_per_iteration: int = 1_000
    batch_size: int = 256  # per source: each step sees batch_size expert and batch_size suboptimal transitions
    hidden: tuple[int, ...] = (256, 256)
    normalize_obs: bool = True  # standardise observations by the statistics of expert ∪ suboptimal data
    value_loss: str = "gumbel"  # gumbel | expectile


@struct.dataclass
class ReCOILHparams:
    lr: jax.Array
    gamma: jax.Array
    polyak: jax.Array
    beta: jax.Array  # mixture weight β of the expert (and of the policy) in the matched mixtures
    expert_reward: jax.Array  # r_E: expert pairs are pulled to c = r_E/(1−γ), the value of earning r_E forever
    shift: jax.Array  # r̃: the reward-free constant in the mixture's Bellman target
    temperature: jax.Array  # Gumbel temperature T (value_loss = gumbel)
    tau: jax.Array  # expectile τ (value_loss = expectile)
    awr_beta: jax.Array  # AWR inverse temperature
    max_weight: jax.Array  # AWR weight clip


@struct.dataclass
class ReCOILState:
    params: Any  # {"actor", "critic", "value"}
    target_critic: Any
    opt_state: Any
    key: jax.Array
    iteration: jax.Array


def validate(config: ReCOILConfig, spec: envs.EnvSpec) -> None:
    """Every check that can be made before compiling; errors name the field and what it accepts."""
    check_offline(config, ReCOILConfig, spec, agent="ReCOIL", choices={"value_loss": VALUE_LOSSES})


def default_hparams() -> ReCOILHparams:
    f = lambda x: jnp.asarray(x, jnp.float32)
    return ReCOILHparams(lr=f(3e-4), gamma=f(0.99), polyak=f(0.005), beta=f(0.5), expert_reward=f(1.0),
                         shift=f(-1.0), temperature=f(5.0), tau=f(0.8), awr_beta=f(3.0), max_weight=f(100.0))


# ----------------------------------------------------------------------------- the objective

def mixture_weights(is_expert, beta):
    """Per-sample weights w, Σw = 1, so that Σ w·g = β·mean_E[g] + (1−β)·mean_S[g]."""
    is_expert = jnp.asarray(is_expert, bool)
    n_e = jnp.sum(is_expert)
    n_s = is_expert.shape[0] - n_e
    return jnp.where(is_expert, beta / n_e, (1.0 - beta) / n_s)


def weighted_gumbel(u, w, *, temperature, clip=7.0):
    """Σ w·(e^z − z − 1), z = min(u/T, clip), in the stable batch-max form of ``objectives.gumbel``.

    Computed as Σ w·(e^(z−m) − e^(−m)·(z + 1)) = e^(−m)·Σ w·(e^z − z − 1), m = stop_grad(max(max z, −1)):
    with uniform weights 1/n it *is* ``objectives.gumbel``.
    """
    z = jnp.minimum(u / temperature, clip)
    m = jax.lax.stop_gradient(jnp.maximum(jnp.max(z), -1.0))
    return jnp.sum(w * (jnp.exp(z - m) - jnp.exp(-m) * (z + 1.0)))


def weighted_expectile(u, w, *, tau):
    """Σ w·|τ − 1[u < 0]|·u²: with uniform weights, ``objectives.expectile``."""
    return jnp.sum(w * jnp.where(u < 0, 1.0 - tau, tau) * jnp.square(u))


def bellman_target(next_v, terminated, gamma, shift):
    """y = r̃ + γ·(m·V(s') + (1 − m)·r̃/(1−γ)), m = 1 − terminated."""
    m = 1.0 - jnp.asarray(terminated, jnp.float32)
    return shift + gamma * (m * next_v + (1.0 - m) * shift / (1.0 - gamma))


def recoil_losses(q, q_bar, v, next_v, log_prob, terminated, is_expert, hp: ReCOILHparams,
                  value_loss: str = "gumbel"):
    """ReCOIL's three losses on one batch of expert and suboptimal transitions (any order).

    Args:
      q: [num_critics, N] online critics Q_i(s, a).
      q_bar: [N] min over the target critics Q̄(s, a) (gradient stopped here).
      v: [N] V(s); next_v: [N] V(s') (gradient stopped here).
      log_prob: [N] log π(a|s).
      terminated: [N] bool; is_expert: [N] bool, True for the D^E transitions.
    Returns:
      (critic + value + actor loss, metrics). Stop-gradients are placed so that the sum's
      gradient is each loss's gradient in its own parameters.
    """
    w = mixture_weights(is_expert, hp.beta)
    w_e = jnp.where(is_expert, 1.0 / jnp.sum(is_expert), 0.0)
    q_bar, next_v = jax.lax.stop_gradient(q_bar), jax.lax.stop_gradient(next_v)
    y = bellman_target(next_v, terminated, hp.gamma, hp.shift)
    c = hp.expert_reward / (1.0 - hp.gamma)
    per_critic = hp.beta * jnp.sum(w_e * jnp.square(q - c), -1) + jnp.sum(w * jnp.square(q - y), -1)
    critic_loss = jnp.sum(per_critic)
    u = q_bar - v
    if value_loss == "gumbel":
        v_loss = weighted_gumbel(u, w, temperature=hp.temperature)
    elif value_loss == "expectile":
        v_loss = weighted_expectile(u, w, tau=hp.tau)
    else:
        raise ConfigError(f"value_loss={value_loss!r} is not accepted; choose one of: {', '.join(VALUE_LOSSES)}")
    advantage = jax.lax.stop_gradient(u)
    weights = objectives.awr_weights(advantage, beta=hp.awr_beta, max_weight=hp.max_weight)
    actor_loss = -jnp.sum(w * weights * log_prob)
    w_s = jnp.where(is_expert, 0.0, 1.0 / jnp.sum(~is_expert))
    metrics = {"loss/critic": critic_loss, "loss/value": v_loss, "loss/actor": actor_loss,
               "q_expert": jnp.sum(w_e * q_bar), "q_suboptimal": jnp.sum(w_s * q_bar),
               "v_expert": jnp.sum(w_e * v), "v_suboptimal": jnp.sum(w_s * v),
               "awr_weight_expert": jnp.sum(w_e * weights), "awr_weight_suboptimal": jnp.sum(w_s * weights)}
    return critic_loss + v_loss + actor_loss, metrics


# ----------------------------------------------------------------------------- the agent

def _concat(a: data.Dataset, b: data.Dataset) -> data.Dataset:
    return data.from_arrays(**{k: np.concatenate([np.asarray(getattr(a, k)), np.asarray(getattr(b, k))])
                               for k in data.FIELDS}, metadata=b.metadata, where="expert ∪ dataset")


def make(config: ReCOILConfig, expert: data.Dataset, dataset: data.Dataset, env, env_params,
         name: str = "recoil") -> Agent:
    """ReCOIL imitating ``expert`` (D^E) with the help of ``dataset`` (D^S, any quality); rewards unused."""
    spec = envs.spec(env, env_params)
    validate(config, spec)
    data.check_env(expert, env, env_params, where="expert")
    data.check_env(dataset, env, env_params, where="dataset")
    # One preparation of the union gives both sets the same observation statistics and action map.
    prep = data.prepare(_concat(expert, dataset), env, env_params, normalize_obs=config.normalize_obs,
                        where="expert ∪ dataset")
    n_e = len(expert)
    ds_e = jax.tree.map(lambda x: x[:n_e], prep.data)
    ds_s = jax.tree.map(lambda x: x[n_e:], prep.data)
    obs_mean, obs_std = prep.obs_mean, prep.obs_std
    B = config.batch_size
    is_expert = jnp.concatenate([jnp.ones(B, bool), jnp.zeros(B, bool)])

    actor = GaussianActor(spec.num_actions, config.hidden)
    critic = critics.QEnsemble(config.hidden)
    value = nets.ValueNet(config.hidden, "relu")
    adam = optax.adam(1.0)  # learning rates are applied by hand, so they stay dynamic hyperparameters

    def init(key, hp: ReCOILHparams, env_params_=None) -> ReCOILState:
        k_a, k_c, k_v, key = jax.random.split(key, 4)
        obs, act = ds_s.obs[:1], ds_s.action[:1]
        params = {"actor": actor.init(k_a, obs), "critic": critic.init(k_c, obs, act), "value": value.init(k_v, obs)}
        return ReCOILState(params, params["critic"], adam.init(params), key, jnp.int32(0))

    def losses(params, target_critic, hp, batch):
        q = critic.apply(params["critic"], batch.obs, batch.action)
        q_bar = critic.apply(target_critic, batch.obs, batch.action).min(0)
        v = value.apply(params["value"], batch.obs)
        next_v = value.apply(params["value"], batch.next_obs)
        mean, log_std = actor.apply(params["actor"], batch.obs)
        log_prob = gaussian_log_prob(mean, log_std, batch.action)
        return recoil_losses(q, q_bar, v, next_v, log_prob, batch.terminated, is_expert, hp, config.value_loss)

    def grad_step(carry, key):
        params, target_critic, opt_state, step, hp = carry
        k_e, k_s = jax.random.split(key)
        batch = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), ds_e.sample(k_e, B), ds_s.sample(k_s, B))
        grads, metrics = jax.grad(losses, has_aux=True)(params, target_critic, hp, batch)
        updates, opt_state = adam.update(grads, opt_state)
        progress = step.astype(jnp.float32) / config.total_steps
        lrs = {"actor": hp.lr * 0.5 * (1.0 + jnp.cos(jnp.pi * progress)), "critic": hp.lr, "value": hp.lr}
        params = {k: jax.tree.map(lambda p, u: p + lrs[k] * u, params[k], updates[k]) for k in params}
        target_critic = critics.polyak(target_critic, params["critic"], hp.polyak)
        return (params, target_critic, opt_state, step + 1, hp), metrics

    def update(state: ReCOILState, hp: ReCOILHparams):
        key, k_steps = jax.random.split(state.key)
        carry = (state.params, state.target_critic, state.opt_state, state.iteration * config.steps_per_iteration, hp)
        (params, target_critic, opt_state, _, _), metrics = jax.lax.scan(
            grad_step, carry, jax.random.split(k_steps, config.steps_per_iteration))
        return (ReCOILState(params, target_critic, opt_state, key, state.iteration + 1),
                jax.tree.map(jnp.mean, metrics))

    def policy(state: ReCOILState) -> Policy:
        return Policy(state.params["actor"], obs_mean, obs_std)

    act = gaussian_act(actor)

    eval_env = envs.RescaleAction(env, prep.action_low, prep.action_high)
    return Agent(name=name, config=config, env=env, env_params=env_params, spec=spec, init=init, update=update,
                 policy=policy, act=act, default_hparams=default_hparams,
                 num_iterations=config.total_steps // config.steps_per_iteration,
                 steps_per_iteration=config.steps_per_iteration, eval_env=eval_env)


Config = ReCOILConfig
Hparams = ReCOILHparams
HELP = {
    "total_steps": "gradient steps per run",
    "steps_per_iteration": "gradient steps per update call (the evaluation granularity)",
    "batch_size": "transitions per gradient step from EACH of the expert and the suboptimal data",
    "hidden": "hidden layer widths of actor, critics and value",
    "normalize_obs": "standardise observations by the mean and std of expert ∪ suboptimal data",
    "value_loss": "implicit-maximum loss of V on the mixture: gumbel (temperature) or expectile (tau)",
    "lr": "Adam learning rate (the actor's decays with a cosine)",
    "gamma": "discount γ",
    "polyak": "target-critic Polyak rate",
    "beta": "mixture weight β in β·d^π + (1−β)·d^S vs β·d^E + (1−β)·d^S (0 < β ≤ 1)",
    "expert_reward": "r_E: Q is pulled to c = r_E/(1−γ) on expert pairs (LS-IQ-style bounded target)",
    "shift": "reward-free constant r̃ < 0 in the mixture's Bellman target r̃ + γ·V(s')",
    "temperature": "Gumbel temperature T of the V loss (value_loss=gumbel)",
    "tau": "expectile τ of the V loss (value_loss=expectile)",
    "awr_beta": "AWR inverse temperature of the actor",
    "max_weight": "AWR weight clip",
}

"""Twin delayed deep deterministic policy gradient.

Fujimoto et al. 2018, "Addressing Function Approximation Error in Actor-Critic Methods".
It shares the replay buffer, the twin critic, the rollout and the iteration shape with
SAC (see agents/sac.py); what differs:

    act         deterministic actor μ(s) ∈ [−1, 1]^A plus N(0, exploration_noise²), clipped
    critic      y = r + γ(1 − terminated) min_i Q̄_i(s', clip(μ̄(s') + clip(ε, −c, c), −1, 1)),
                ε ~ N(0, target_noise²), c = noise_clip          (target policy smoothing)
    actor       −mean Q_1(s, μ(s)), every policy_delay gradient steps   (delayed updates)
    targets     μ̄ and Q̄ Polyak-averaged with τ at those same steps

One ``update`` is train_freq steps of num_envs envs, then gradient_steps gradient steps
(skipped during the ``learning_starts`` warm-up with uniform random actions).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from rlx import critics, envs, nets, replay
from rlx.agent import Agent
from rlx.agents.sac import CRITIC_LOSSES, critic_loss_fn, rollout, stored_capacity
from rlx.agents.sac import validate as _validate_common
from rlx.config import ConfigError, check_positive_int


@dataclasses.dataclass(frozen=True)
class TD3Config:
    """Static settings: changing any of them recompiles. Defaults follow the TD3 paper,
    with 256×256 networks and batch 256 as in its later reference implementation."""

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
    policy_delay: int = 2


@struct.dataclass
class TD3Hparams:
    actor_lr: jax.Array
    critic_lr: jax.Array
    gamma: jax.Array
    tau: jax.Array
    exploration_noise: jax.Array  # σ of the Gaussian exploration noise, in units of the half action range
    target_noise: jax.Array  # σ of the target policy smoothing noise
    noise_clip: jax.Array  # the smoothing noise is clipped to ±noise_clip
    objective: dict  # unused: TD3's actor objective has no hyperparameters (kept for the common interface)


@struct.dataclass
class TD3State:
    params: Any  # {"actor", "critic"}
    target: Any  # {"actor", "critic"}
    opt_state: Any
    buffer: replay.ReplayState
    env_state: Any
    obs: jax.Array
    env_params: Any
    key: jax.Array
    iteration: jax.Array
    grad_steps: jax.Array


class DeterministicPolicy(nn.Module):
    """μ(s) = tanh(MLP(s)) ∈ (−1, 1)^A."""

    action_dim: int
    hidden: Sequence[int]
    activation: str = "relu"

    @nn.compact
    def __call__(self, obs):
        x = nets.MLP(self.hidden, self.activation)(obs)
        return jnp.tanh(nets.Dense(self.action_dim)(x))


METRICS = ("loss/critic", "loss/actor", "q", "actor_updates")


def validate(config: TD3Config, spec: envs.EnvSpec) -> None:
    """Every check that can be made before compiling (the shared ones are SAC's)."""
    owner = type(config).__name__
    if not isinstance(config, TD3Config):
        raise ConfigError(f"config must be a TD3Config, got {owner}")
    if spec.discrete:
        raise ConfigError(f"{owner}: TD3 needs a continuous (Box) action space, but the env has {spec.num_actions} "
                          "discrete actions; use a continuous env such as Pendulum-v1 or brax:hopper, or PPO")
    check_positive_int(owner, "policy_delay", config.policy_delay)
    common = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name != "policy_delay"}
    from rlx.agents.sac import SACConfig

    try:
        _validate_common(SACConfig(**common), spec)
    except ConfigError as e:
        raise ConfigError(str(e).replace("SACConfig", owner)) from None


def default_hparams() -> TD3Hparams:
    """TD3 paper defaults: lr 3e-4, γ 0.99, τ 0.005, exploration σ 0.1, smoothing σ 0.2 clipped at 0.5."""
    f = lambda x: jnp.asarray(x, jnp.float32)
    return TD3Hparams(actor_lr=f(3e-4), critic_lr=f(3e-4), gamma=f(0.99), tau=f(0.005), exploration_noise=f(0.1),
                      target_noise=f(0.2), noise_clip=f(0.5), objective={})


DEFAULT_OBJECTIVE = "td3"


def make(config: TD3Config, env, env_params, objective: Any = None) -> Agent:
    """Build the TD3 agent for ``env``; validates everything before any tracing.

    ``objective`` is accepted for the common CLI interface; TD3 has one actor objective, "td3".
    """
    if objective not in (None, DEFAULT_OBJECTIVE):
        raise ConfigError(f"TD3 has one actor objective, {DEFAULT_OBJECTIVE!r}; got {objective!r} "
                          "(pluggable actor objectives: rlx train sac --objective sac|mdpo)")
    spec = envs.spec(env, env_params)
    validate(config, spec)
    num_actions = spec.num_actions
    steps_per_iteration = config.num_envs * config.train_freq
    num_iterations = config.total_timesteps // steps_per_iteration
    warmup_iterations = -(-config.learning_starts // config.train_freq)

    actor = DeterministicPolicy(num_actions, config.hidden, config.activation)
    critic = critics.QEnsemble(config.hidden, config.activation, config.num_critics)
    critic_loss = critic_loss_fn(config.critic_loss)
    eval_env = envs.RescaleAction(env, spec.action_low, spec.action_high)
    train_env = envs.VecEnv(eval_env, config.num_envs)
    adam = optax.scale_by_adam()

    def init(key, hp: TD3Hparams, env_params_=None) -> TD3State:
        ep = env_params if env_params_ is None else env_params_
        key, k_actor, k_critic, k_env = jax.random.split(key, 4)
        obs, env_state = train_env.reset(k_env, ep)
        params = {"actor": actor.init(k_actor, obs[0]),
                  "critic": critic.init(k_critic, obs[0], jnp.zeros((num_actions,), jnp.float32))}
        example = replay.Transition(obs, jnp.zeros((config.num_envs, num_actions), jnp.float32),
                                    jnp.zeros(config.num_envs, jnp.float32), jnp.zeros(config.num_envs, bool),
                                    jnp.zeros(config.num_envs, bool), obs)
        buf = replay.init(stored_capacity(config), example)
        opt_state = {"actor": adam.init(params["actor"]), "critic": adam.init(params["critic"])}
        return TD3State(params, params, opt_state, buf, env_state, obs, ep, key, jnp.int32(0), jnp.int32(0))

    def critic_loss_of(critic_params, target, hp: TD3Hparams, b: replay.Batch, key):
        noise = jnp.clip(hp.target_noise * jax.random.normal(key, b.action.shape), -hp.noise_clip, hp.noise_clip)
        next_action = jnp.clip(actor.apply(target["actor"], b.next_obs) + noise, -1.0, 1.0)
        next_q = critic.apply(target["critic"], b.next_obs, next_action).min(axis=0)
        y = jax.lax.stop_gradient(b.reward + b.discount * next_q)
        q = critic.apply(critic_params, b.obs, b.action)
        return config.num_critics * critic_loss(q, jnp.broadcast_to(y, q.shape)), q

    def actor_loss_of(actor_params, critic_params, b: replay.Batch):
        q = critic.apply(critic_params, b.obs, actor.apply(actor_params, b.obs))
        return -jnp.mean(q[0])

    def gradient_step(state: TD3State, hp: TD3Hparams, key, grad_steps=None):
        """One critic step, and the actor's every ``policy_delay``-th. ``grad_steps``: this step's
        1-based count (default from the state; the run loop passes one shared by every run)."""
        k_sample, k_noise = jax.random.split(key)
        b = replay.sample(state.buffer, k_sample, config.batch_size, n_step=config.n_step, gamma=hp.gamma)
        (loss_q, q), g_critic = jax.value_and_grad(critic_loss_of, has_aux=True)(
            state.params["critic"], state.target, hp, b, k_noise)
        upd, opt_critic = adam.update(g_critic, state.opt_state["critic"])
        # Every critic write waits for every critic gradient, so the weights are updated in place.
        lr = hp.critic_lr + critics.zero_after(g_critic)
        critic_params = jax.tree.map(lambda p, u: p - lr * u, state.params["critic"], upd)
        grad_steps = state.grad_steps + 1 if grad_steps is None else grad_steps

        def delayed(_):
            # The actor learns against the freshly updated critic; then both targets move.
            loss_pi, g = jax.value_and_grad(actor_loss_of)(state.params["actor"], critic_params, b)
            upd, opt_actor = adam.update(g, state.opt_state["actor"])
            lr = hp.actor_lr + critics.zero_after(g)
            actor_params = jax.tree.map(lambda p, u: p - lr * u, state.params["actor"], upd)
            params = {"actor": actor_params, "critic": critic_params}
            return params, opt_actor, critics.polyak(state.target, params, hp.tau), loss_pi

        def critic_only(_):
            return ({"actor": state.params["actor"], "critic": critic_params}, state.opt_state["actor"],
                    state.target, jnp.float32(0.0))

        # With a shared grad_steps this is a real branch under vmap: the actor costs nothing on
        # the steps it waits.
        params, opt_actor, target, loss_pi = jax.lax.cond(grad_steps % config.policy_delay == 0, delayed,
                                                          critic_only, None)
        on = (grad_steps % config.policy_delay == 0).astype(jnp.float32)
        metrics = {"loss/critic": loss_q, "loss/actor": loss_pi, "q": jnp.mean(q), "actor_updates": on}
        return state.replace(params=params, target=target, opt_state={"actor": opt_actor, "critic": opt_critic},
                             grad_steps=grad_steps), metrics

    def update_at(state: TD3State, hp: TD3Hparams, iteration):
        ep = state.env_params
        key, k_roll, k_learn = jax.random.split(state.key, 3)
        warm = iteration < warmup_iterations  # a real branch when ``iteration`` is shared by every run

        def act_fn(obs, key):
            k_uniform, k_noise = jax.random.split(key)
            random = jax.random.uniform(k_uniform, (config.num_envs, num_actions), minval=-1.0, maxval=1.0)
            mu = actor.apply(state.params["actor"], obs)
            noisy = jnp.clip(mu + hp.exploration_noise * jax.random.normal(k_noise, mu.shape), -1.0, 1.0)
            return jnp.where(warm, random, noisy)

        env_state, obs, buf, ret_sum, count = rollout(train_env, act_fn, state, ep, config.train_freq, k_roll)
        state = state.replace(env_state=env_state, obs=obs, buffer=buf)

        # Learning steps done before this iteration, from the (shared) iteration index.
        first = (iteration - warmup_iterations) * config.gradient_steps
        counts = first + 1 + jnp.arange(config.gradient_steps)
        state, sums = critics.learn_unless(warm, lambda s, kc: gradient_step(s, hp, *kc), state,
                                           (jax.random.split(k_learn, config.gradient_steps), counts), METRICS)
        metrics = {k: v / config.gradient_steps for k, v in sums.items()}
        # loss/actor: mean over the steps that updated the actor (0 if none did this iteration).
        metrics["loss/actor"] = sums["loss/actor"] / jnp.maximum(sums["actor_updates"], 1.0)
        metrics["actor_updates"] = sums["actor_updates"]
        metrics["episode_return"] = jnp.where(count > 0, ret_sum / jnp.maximum(count, 1), jnp.nan)
        metrics["episodes"] = count
        return state.replace(key=key, iteration=state.iteration + 1), metrics

    def update(state: TD3State, hp: TD3Hparams):
        return update_at(state, hp, state.iteration)

    def policy(state: TD3State):
        return state.params["actor"]

    def act(actor_params, obs, key, deterministic: bool = False):
        # Evaluation acts deterministically; otherwise with the exploration noise of the defaults.
        mu = actor.apply(actor_params, obs)
        if deterministic:
            return mu
        return jnp.clip(mu + 0.1 * jax.random.normal(key, mu.shape), -1.0, 1.0)

    update.gradient_step = gradient_step  # (state, hp, key) -> (state, metrics): one update alone, for benchmarks
    return Agent(name="td3", config=config, env=env, env_params=env_params, spec=spec, init=init, update=update,
                 policy=policy, act=act, default_hparams=default_hparams, num_iterations=num_iterations,
                 steps_per_iteration=steps_per_iteration, eval_env=eval_env, update_at=update_at)


# The names the CLI and the sweep tools look for in every agent module.
Config = TD3Config
Hparams = TD3Hparams
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
    "activation": "activation",
    "critic_loss": "critic regression loss: " + ", ".join(CRITIC_LOSSES),
    "num_critics": "critics in the ensemble; targets use their minimum",
    "policy_delay": "gradient steps per actor and target update",
    "actor_lr": "actor Adam learning rate",
    "critic_lr": "critic Adam learning rate",
    "gamma": "discount γ",
    "tau": "Polyak coefficient of the target networks",
    "exploration_noise": "σ of the Gaussian exploration noise (actions in [−1, 1])",
    "target_noise": "σ of the target policy smoothing noise",
    "noise_clip": "clip of the target policy smoothing noise",
}

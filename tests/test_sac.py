"""SAC: learning, determinism, vmap equivalence, bootstrapping, pluggable actor objectives, bad input."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments import spaces

from rlx import envs, objectives, replay
from rlx.agents import sac
from rlx.config import ConfigError
from rlx.run import make_train
from toy_envs import Counter, CounterParams


def test_pendulum_20k_two_seeds_learns():
    # 64×64 networks and batch 64 keep this test cheap (the paper: 256×256, batch 256). Untrained
    # policies score about −1200 to −1500. Measured medians of seed pairs 0, 1, 2 (keys split from
    # PRNGKey(pair)): −157, −175, −121 at batch 64 (13 s of running here), −162, −170, −122 at 256 (38 s).
    env, params = envs.make("Pendulum-v1")
    agent = sac.make(sac.SACConfig(total_timesteps=20_000, hidden=(64, 64), batch_size=64, buffer_size=20_000), env,
                     params)
    train = jax.jit(jax.vmap(make_train(agent, eval_every=agent.num_iterations, eval_episodes=16),
                             in_axes=(0, None)))
    _, metrics = train(jax.random.split(jax.random.PRNGKey(0), 2), agent.default_hparams())
    final = np.asarray(metrics["eval/return"])[:, -1]
    assert np.median(final) >= -250, final
    assert np.all(np.asarray(metrics["alpha"])[:, -1] < 0.5)  # the temperature was tuned down


SMALL = dict(total_timesteps=400, learning_starts=100, batch_size=32, hidden=(16,), num_envs=2, gradient_steps=2)


@pytest.fixture(scope="module")
def short():
    env, params = envs.make("Pendulum-v1")
    agent = sac.make(sac.SACConfig(**SMALL), env, params)
    return agent, jax.jit(make_train(agent, eval_episodes=0))


def test_same_key_gives_bitwise_equal_parameters(short):
    agent, train = short
    hp = agent.default_hparams()
    s1, m1 = train(jax.random.PRNGKey(3), hp)
    s2, m2 = train(jax.random.PRNGKey(3), hp)
    for a, b in zip(jax.tree.leaves((s1.params, s1.target_critic, s1.buffer)),
                    jax.tree.leaves((s2.params, s2.target_critic, s2.buffer))):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(m1["loss/critic"], m2["loss/critic"])
    s3, _ = train(jax.random.PRNGKey(4), hp)
    assert not np.array_equal(jax.tree.leaves(s1.params)[0], jax.tree.leaves(s3.params)[0])


def test_vmapped_run_equals_single_runs_over_seeds_and_hparams(short):
    agent, train = short
    hp = agent.default_hparams()
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    lrs = jnp.array([1e-4, 3e-4, 1e-3])
    hp_batch = jax.tree.map(lambda x: jnp.broadcast_to(x, (3,) + jnp.shape(x)), hp).replace(critic_lr=lrs)
    states, metrics = jax.jit(jax.vmap(make_train(agent, eval_episodes=0)))(keys, hp_batch)
    for i in range(3):
        s, m = train(keys[i], hp.replace(critic_lr=lrs[i]))
        for a, b in zip(jax.tree.leaves(s.params), jax.tree.leaves(states.params)):
            np.testing.assert_allclose(a, b[i], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(m["loss/critic"], metrics["loss/critic"][i], rtol=1e-3, atol=1e-4)
    assert not np.allclose(jax.tree.leaves(states.params)[0][0], jax.tree.leaves(states.params)[0][2])


# ---------------------------------------------------------------- bootstrapping

class ContinuousCounter(Counter):
    """Counter whose position grows by 1 every step, with a continuous action in [−1, 1]."""

    def step(self, key, state, action, params=None):
        return super().step(key, state, jnp.float32(1.0), params)

    def action_space(self, params):
        return spaces.Box(-1.0, 1.0, (1,), jnp.float32)


def _counter_agent(params, **cfg):
    env = envs.EpisodeStats(envs.AutoReset(ContinuousCounter()))
    config = dict(total_timesteps=64, learning_starts=30, batch_size=8, hidden=(8,), num_envs=1)
    return sac.make(sac.SACConfig(**{**config, **cfg}), env, params)


@pytest.mark.parametrize("case", ["truncated", "terminated"])
def test_targets_bootstrap_through_truncation_never_termination(case):
    # Episodes of 3 steps, positions 1, 2, 3; the third step truncates or terminates.
    params = CounterParams(max_steps_in_episode=3) if case == "truncated" else CounterParams(terminal_time=3)
    agent = _counter_agent(params)
    hp = agent.default_hparams()
    state = jax.jit(agent.init)(jax.random.PRNGKey(0), hp)
    update = jax.jit(agent.update)
    for _ in range(9):  # warm-up iterations: act and store only
        state, _ = update(state, hp)
    batch = replay.sample(state.buffer, jax.random.PRNGKey(1), 256, gamma=0.9)
    obs, next_obs = np.asarray(batch.obs[:, 0]), np.asarray(batch.next_obs[:, 0])
    # The stored next state is the true one, also at the end of an episode (3, not the reset 0).
    np.testing.assert_array_equal(next_obs, obs + 1)
    end = obs == 2
    assert end.any() and (~end).any()
    # Hand-computed targets with Q̄(s', ·) = 10·s' and log π(a'|s') = −1, α = 0.5.
    next_q, next_log_prob = 10.0 * next_obs, -np.ones_like(next_obs)
    y = np.asarray(sac.soft_td_target(batch, next_q, next_log_prob, 0.5))
    bootstrap = 1.0 + 0.9 * (10.0 * next_obs + 0.5)
    expected = np.where(end & (case == "terminated"), 1.0, bootstrap)
    np.testing.assert_allclose(y, expected, rtol=1e-6)


# ---------------------------------------------------------------- objectives

def test_mdpo_equals_sac_when_c_equals_lambda():
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
    lp, lp_old, q = (jax.random.normal(k, (64,)) for k in (k1, k2, k3))
    for alpha in (0.0, 0.2, 1.3):
        np.testing.assert_allclose(objectives.mdpo_actor(lp, lp_old, q, c=alpha, lam=alpha),
                                   objectives.sac_actor(lp, q, alpha=alpha), rtol=1e-6)
        # and differs once the KL coefficient is on, through log π_k
        assert not np.isclose(objectives.mdpo_actor(lp, lp_old, q, c=alpha + 1.0, lam=alpha),
                              objectives.sac_actor(lp, q, alpha=alpha))
    # The SAC loss by hand: mean(α log π − Q).
    np.testing.assert_allclose(objectives.sac_actor(jnp.array([-1.0, 2.0]), jnp.array([3.0, 1.0]), alpha=0.5),
                               ((-0.5 - 3.0) + (1.0 - 1.0)) / 2)


def my_actor_loss(log_prob, log_prob_old, q, *, alpha, scale=2.0):
    return jnp.mean(alpha * log_prob - scale * q)


@pytest.mark.parametrize("objective", ["sac", "mdpo", my_actor_loss])
def test_actor_objectives_plug_in(objective):
    env, params = envs.make("Pendulum-v1")
    # "sac" (the default) runs the `short` fixture's exact program, so the tests' persistent
    # compilation cache serves it. The custom objective also runs the Huber critic loss and 3-step
    # returns. None evaluates: evaluation never sees the actor objective.
    extra = {"sac": {}, "mdpo": {"old_policy_period": 4}}.get(objective, {"critic_loss": "huber", "n_step": 3})
    agent = sac.make(sac.SACConfig(**{**SMALL, **extra}), env, params, objective=objective)
    hp = agent.default_hparams()
    assert set(hp.objective) == {"sac": set(), "mdpo": {"kl_coef"}}.get(objective, {"scale"})
    state, metrics = jax.jit(make_train(agent, eval_episodes=0))(jax.random.PRNGKey(0), hp)
    for k in ("loss/actor", "loss/critic"):
        assert np.isfinite(np.asarray(metrics[k])).all(), k
    init = agent.init(jax.random.split(jax.random.PRNGKey(0))[1], hp)
    assert not np.allclose(jax.tree.leaves(state.params["actor"])[0], jax.tree.leaves(init.params["actor"])[0])
    if objective == "mdpo":  # π_k was refreshed: it is a recent copy, not the initial actor
        assert not np.allclose(jax.tree.leaves(state.old_actor)[0], jax.tree.leaves(init.params["actor"])[0])


# ---------------------------------------------------------------- bad input, before compiling

def test_discrete_env_is_refused():
    env, params = envs.make("CartPole-v1")
    with pytest.raises(ConfigError, match="continuous"):
        sac.make(sac.SACConfig(), env, params)


def test_batch_larger_than_warmup_buffer_is_refused():
    env, params = envs.make("Pendulum-v1")
    with pytest.raises(ConfigError, match=r"batch_size=256 .*learning_starts × num_envs = 100 × 2 = 200") as e:
        sac.make(sac.SACConfig(batch_size=256, learning_starts=100, num_envs=2), env, params)
    assert "learning_starts to ≥ 128" in str(e.value)


@pytest.mark.parametrize("field,value,match", [
    ("critic_loss", "mse", "squared_error, huber"),
    ("activation", "sigmoid", "tanh"),
    ("hidden", (), "layer widths"),
    ("gradient_steps", 0, "positive integer"),
    ("learning_starts", 200_000, "below total_timesteps"),
])
def test_bad_config_names_field_and_choices(field, value, match):
    env, params = envs.make("Pendulum-v1")
    with pytest.raises(ConfigError, match=match) as e:
        sac.make(sac.SACConfig(**{field: value}), env, params)
    assert field in str(e.value)


def test_unknown_objective_lists_choices():
    env, params = envs.make("Pendulum-v1")
    with pytest.raises(ConfigError, match="sac, mdpo"):
        sac.make(sac.SACConfig(), env, params, objective="ppo")

"""TD3+BC on the small generated Pendulum-v1 medium dataset, and its TD3 mechanics by hand."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import critics, data, envs, offline_cli
from rlx.agents import td3bc
from rlx.agents.td3 import DeterministicPolicy
from rlx.config import ConfigError
from rlx.run import make_train, run_population


@pytest.mark.slow  # out of CI; at full size in experiments/offline.py (5 seeds on every Pendulum-v1 tier)
def test_td3bc_beats_its_medium_data(medium):
    # Paper hyperparameters (α = 2.5, policy delay 2, ...); 128×128 networks and 12k steps for time.
    # Measured (mean of the last 3 evaluations, 64 episodes each): seed 0 scores 25, seeds 1–5 20–27; the data 15.
    ds, env, params = medium
    agent = td3bc.make(td3bc.TD3BCConfig(total_steps=12_000, steps_per_iteration=2_000, hidden=(128, 128)),
                       ds, env, params)
    _, metrics = jax.jit(make_train(agent, eval_every=1, eval_episodes=64))(jax.random.PRNGKey(0),
                                                                           agent.default_hparams())
    data_score = ds.normalized_score(ds.episode_returns()).mean()
    score = ds.normalized_score(metrics["eval/return"][-3:]).mean()
    assert 0 < data_score < 60, data_score  # the data really is medium quality
    print(f"td3bc score {score:.1f}, data {data_score:.1f}, evals {ds.normalized_score(metrics['eval/return'])}")
    assert score >= data_score, (score, data_score)
    np.testing.assert_array_equal(metrics["actor_updates"], 1_000)  # every second step, counted per iteration
    assert np.all(metrics["lambda"] > 0) and np.all(np.isfinite(metrics["loss/critic"]))


@pytest.mark.parametrize("steps_per_iteration", [20, 15])  # 15: the delay's phase depends on the iteration
def test_td3bc_vmap_equals_separate_runs_and_is_deterministic(medium, steps_per_iteration):
    ds, env, params = medium
    cfg = td3bc.TD3BCConfig(total_steps=3 * steps_per_iteration, steps_per_iteration=steps_per_iteration,
                            hidden=(32, 32))
    agent = td3bc.make(cfg, ds, env, params)
    train = jax.jit(make_train(agent, eval_episodes=0))
    hp = agent.default_hparams()
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    if steps_per_iteration == 20:
        states, _ = jax.jit(jax.vmap(make_train(agent, eval_episodes=0), in_axes=(0, None)))(keys, hp)
    else:  # the CLI's path: the whole state is vmapped, so the iteration counter is batched too
        hps = jax.tree.map(lambda x: jnp.broadcast_to(x, (3,)), hp)
        states = run_population(agent, keys, hps, eval_episodes=0).state
    for i in range(3):
        s, _ = train(keys[i], hp)
        for a, b in zip(jax.tree.leaves((s.params, s.target)), jax.tree.leaves((states.params, states.target))):
            np.testing.assert_allclose(a, b[i], rtol=1e-5, atol=1e-6)
    s1, _ = train(keys[0], hp)
    s2, _ = train(keys[0], hp)
    for a, b in zip(jax.tree.leaves(s1), jax.tree.leaves(s2)):
        np.testing.assert_array_equal(a, b)


def _leaves_equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_td3bc_actor_and_targets_move_only_every_policy_delay_steps(medium):
    ds, env, params = medium
    agent = td3bc.make(td3bc.TD3BCConfig(total_steps=10, steps_per_iteration=1, hidden=(16, 16)), ds, env, params)
    hp = agent.default_hparams()
    step = jax.jit(agent.update.gradient_step)
    s0 = agent.init(jax.random.PRNGKey(0), hp)

    s1, m1 = step(s0, hp, jax.random.PRNGKey(1), jnp.int32(1))  # 1 % 2 != 0: critic only
    assert _leaves_equal(s1.params["actor"], s0.params["actor"])
    assert _leaves_equal(s1.opt_state["actor"], s0.opt_state["actor"])
    assert _leaves_equal(s1.target, s0.target)
    assert not _leaves_equal(s1.params["critic"], s0.params["critic"])
    assert float(m1["actor_updates"]) == 0.0 and float(m1["loss/actor"]) == 0.0

    s2, m2 = step(s1, hp, jax.random.PRNGKey(2), jnp.int32(2))  # 2 % 2 == 0: actor, then both targets
    assert not _leaves_equal(s2.params["actor"], s1.params["actor"])
    assert not _leaves_equal(s2.params["critic"], s1.params["critic"])
    assert float(m2["actor_updates"]) == 1.0
    want = jax.tree.map(lambda t, p: t + 0.005 * (p - t), s1.target, s2.params)  # θ̄ + τ(θ − θ̄) by hand
    for a, b in zip(jax.tree.leaves(s2.target), jax.tree.leaves(want)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # The actor loss by hand: −λ·mean Q1(s, π(s)) + mean ‖π(s) − a‖², λ = α/mean|Q1|, on the step's batch
    # (standardised observations) and against the critic updated in that same step.
    k_sample, _ = jax.random.split(jax.random.PRNGKey(2))
    batch = data.prepare(ds, env, params, normalize_obs=True).data.sample(k_sample, 256)
    pi = DeterministicPolicy(1, (16, 16)).apply(s1.params["actor"], batch.obs)
    q1 = critics.QEnsemble((16, 16)).apply(s2.params["critic"], batch.obs, pi)[0]
    lam = 2.5 / jnp.mean(jnp.abs(q1))
    np.testing.assert_allclose(float(m2["lambda"]), float(lam), rtol=1e-5)
    np.testing.assert_allclose(float(m2["loss/actor"]), float(-lam * q1.mean() + jnp.mean((pi - batch.action) ** 2)),
                               rtol=1e-5)

    # Through update: one step per iteration, so the actor moves on iterations 2, 4, ... only.
    upd = jax.jit(agent.update)
    state = s0
    for it in range(1, 5):
        new, m = upd(state, hp)
        moved = not _leaves_equal(new.params["actor"], state.params["actor"])
        assert moved == (it % 2 == 0), it
        assert float(m["actor_updates"]) == float(it % 2 == 0)
        state = new


@pytest.mark.parametrize("spi, delay, want", [(3, 2, [1, 2, 1, 2]), (4, 2, [2, 2, 2, 2]), (3, 3, [1, 1, 1, 1]),
                                              (5, 3, [1, 2, 2, 1])])
def test_td3bc_counts_the_delay_across_iterations(medium, spi, delay, want):
    # Global steps 1, 2, ...: the actor updates when step % policy_delay == 0, whatever the iteration size.
    ds, env, params = medium
    agent = td3bc.make(td3bc.TD3BCConfig(total_steps=4 * spi, steps_per_iteration=spi, hidden=(8,), policy_delay=delay),
                       ds, env, params)
    _, metrics = jax.jit(make_train(agent, eval_episodes=0))(jax.random.PRNGKey(0), agent.default_hparams())
    np.testing.assert_array_equal(metrics["actor_updates"], want)


def test_td3bc_target_smoothing_noise_is_clipped():
    key = jax.random.PRNGKey(0)
    mu = jnp.zeros((20_000, 2))
    # Huge σ: nearly every draw is clipped, so the noise sits at exactly ±noise_clip.
    a = td3bc.smoothed_action(mu, key, 100.0, 0.5)
    assert float(jnp.abs(a).max()) == 0.5
    assert float(jnp.mean(jnp.abs(a) == 0.5)) > 0.99
    # Paper values σ = 0.2, c = 0.5: P(|ε| > 0.5) = P(|z| > 2.5) = 1.24 %.
    a = td3bc.smoothed_action(mu, key, 0.2, 0.5)
    assert float(jnp.abs(a).max()) <= 0.5
    assert 0.008 < float(jnp.mean(jnp.abs(a) == 0.5)) < 0.017
    np.testing.assert_allclose(float(jnp.std(a)), 0.2, rtol=0.03)  # barely changed by the clip
    # The smoothed action stays in [−1, 1]; no noise leaves μ̄ as is.
    assert float(td3bc.smoothed_action(jnp.full((1000, 1), 0.9), key, 1.0, 0.5).max()) == 1.0
    np.testing.assert_array_equal(td3bc.smoothed_action(mu + 0.3, key, 0.0, 0.5), mu + 0.3)


def test_td3bc_rejects_bad_config(medium):
    ds, env, params = medium
    cart, cart_params = envs.make("CartPole-v1")
    with pytest.raises(ConfigError, match="continuous action space"):
        td3bc.make(td3bc.TD3BCConfig(), ds, cart, cart_params)
    with pytest.raises(ConfigError, match="reward_scale='linear' is not accepted; choose one of: none, episode_range"):
        td3bc.make(td3bc.TD3BCConfig(reward_scale="linear"), ds, env, params)
    for delay in (0, -2, 1.5):
        with pytest.raises(ConfigError, match=r"TD3BCConfig\.policy_delay=.*must be a positive integer"):
            td3bc.make(td3bc.TD3BCConfig(policy_delay=delay), ds, env, params)
    with pytest.raises(ConfigError, match="critic_loss='l1' is not accepted; choose one of: squared_error, huber"):
        td3bc.make(td3bc.TD3BCConfig(critic_loss="l1"), ds, env, params)
    with pytest.raises(ConfigError, match=r"TD3BCConfig\.hidden=\(\)"):
        td3bc.make(td3bc.TD3BCConfig(hidden=()), ds, env, params)
    with pytest.raises(ConfigError, match="smaller than one iteration"):
        td3bc.make(td3bc.TD3BCConfig(total_steps=10, steps_per_iteration=20), ds, env, params)
    with pytest.raises(ConfigError, match="normalize_obs='yes': must be True or False"):
        td3bc.make(td3bc.TD3BCConfig(normalize_obs="yes"), ds, env, params)
    with pytest.raises(ConfigError, match="must be a TD3BCConfig"):
        td3bc.make(dataclasses.make_dataclass("Other", [])(), ds, env, params)
    bad = ds.replace(obs=jnp.zeros((len(ds), 5)), next_obs=jnp.zeros((len(ds), 5)))
    with pytest.raises(data.DatasetError, match="observation shape"):
        td3bc.make(td3bc.TD3BCConfig(), bad, env, params)


def test_td3bc_module_has_the_cli_interface():
    hp = td3bc.default_hparams()
    for f in dataclasses.fields(hp):
        leaf = getattr(hp, f.name)
        assert isinstance(leaf, jax.Array) and leaf.shape == () and leaf.dtype == jnp.float32, f.name
        assert f.name in td3bc.HELP, f.name
    for f in dataclasses.fields(td3bc.Config):
        assert f.name in td3bc.HELP, f.name
    assert td3bc.Config is td3bc.TD3BCConfig and td3bc.Hparams is td3bc.TD3BCHparams
    assert td3bc.TD3BCConfig().normalize_obs and td3bc.TD3BCConfig().policy_delay == 2
    args = offline_cli.build_parser("td3bc", td3bc).parse_args(
        ["--dataset", "x.npz", "--alpha", "2.5,5", "--policy-delay", "3", "--no-normalize-obs"])
    assert args.alpha == [2.5, 5.0] and args.policy_delay == 3 and args.normalize_obs is False

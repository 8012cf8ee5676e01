"""ReCOIL (offline imitation, Dual RL) and the behaviour-cloning baseline on Pendulum-v1."""
import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import collect, data, envs, objectives
from rlx.agents import bc, recoil
from rlx.config import ConfigError
from rlx.run import make_train


@pytest.fixture(scope="module")
def random_data():
    """20k transitions of uniformly random actions."""
    env, params = envs.make("Pendulum-v1")
    meta = data.Metadata("Pendulum-v1", source="tests: uniform random actions")
    return collect.random(env, params, jax.random.PRNGKey(3), num_steps=20_000, metadata=meta), env, params


def union(*parts: data.Dataset) -> data.Dataset:
    """The transitions of every part, with the last part's metadata (reference returns)."""
    return data.from_arrays(**{k: np.concatenate([np.asarray(getattr(p, k)) for p in parts]) for k in data.FIELDS},
                            metadata=parts[-1].metadata)


def final_scores(agent, hp, ref: data.Dataset, seeds: int = 2) -> np.ndarray:
    """Normalised score of the deterministic policy after the last iteration, one per seed (vmapped)."""
    keys = jax.random.split(jax.random.PRNGKey(0), seeds)
    train = make_train(agent, eval_every=agent.num_iterations, eval_episodes=16)
    _, metrics = jax.jit(jax.vmap(train, in_axes=(0, None)))(keys, hp)
    return ref.normalized_score(np.asarray(metrics["eval/return"])[:, -1])


@pytest.mark.slow  # out of CI; at full size in experiments/recoil_pendulum.py
def test_recoil_beats_bc_on_five_expert_episodes_plus_random_and_medium_data(expert, medium, random_data):
    t0 = time.perf_counter()
    ds_e, env, params = expert
    sub = union(random_data[0], medium[0])  # D^S: 20k random + 20k medium transitions
    expert_score = ds_e.normalized_score(ds_e.episode_returns()).mean()
    sub_score = sub.normalized_score(sub.episode_returns()).mean()
    assert len(ds_e.episode_returns()) == 5 and expert_score > 80, expert_score
    assert sub_score < 30, sub_score

    # 64×64 measured: ReCOIL 81, 71; BC on the union 1, −5; BC on D^E 98, 96 (128×128: 94, 92 at 1.7× the time).
    steps, hidden = 8_000, (64, 64)
    agent = recoil.make(recoil.ReCOILConfig(total_steps=steps, steps_per_iteration=1_000, batch_size=128,
                                            hidden=hidden), ds_e, sub, env, params)
    hp = agent.default_hparams().replace(gamma=jnp.float32(0.9))
    recoil_scores = final_scores(agent, hp, ds_e)
    # BC sees as many transitions per step (2 × 128) for as many steps, with the same seeds.
    bc_cfg = bc.BCConfig(total_steps=steps, steps_per_iteration=1_000, batch_size=256, hidden=hidden)
    bc_union = bc.make(bc_cfg, union(ds_e, sub), env, params)
    bc_scores = final_scores(bc_union, bc_union.default_hparams(), ds_e)
    bc_expert = bc.make(bc_cfg, ds_e, env, params)
    bc_expert_scores = final_scores(bc_expert, bc_expert.default_hparams(), ds_e)
    report = (f"ReCOIL {np.round(recoil_scores, 1)}, BC on D^E ∪ D^S {np.round(bc_scores, 1)}, "
              f"BC on D^E only {np.round(bc_expert_scores, 1)}; data: expert {expert_score:.1f}, "
              f"suboptimal {sub_score:.1f} ({time.perf_counter() - t0:.0f} s)")
    print(report)
    assert recoil_scores.mean() >= bc_scores.mean() + 20, report
    assert recoil_scores.min() >= 25, report
    assert bc_expert_scores.mean() > 80, report  # the expert data really are enough to imitate


def small_agent(random_data, **changes):
    ds, env, params = random_data
    cfg = recoil.ReCOILConfig(total_steps=40, steps_per_iteration=20, batch_size=16, hidden=(32, 32))
    expert_part = jax.tree.map(lambda x: x[:400], ds)
    return recoil.make(dataclasses.replace(cfg, **changes), expert_part, jax.tree.map(lambda x: x[400:4000], ds),
                       env, params)


@pytest.mark.parametrize("value_loss", ["gumbel", "expectile"])
def test_recoil_vmap_equals_separate_runs_and_is_deterministic(random_data, value_loss):
    agent = small_agent(random_data, value_loss=value_loss)
    hp = agent.default_hparams()
    train = jax.jit(make_train(agent, eval_episodes=0))
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    states, _ = jax.jit(jax.vmap(make_train(agent, eval_episodes=0), in_axes=(0, None)))(keys, hp)
    for i in range(3):
        s, _ = train(keys[i], hp)
        for a, b in zip(jax.tree.leaves(s.params), jax.tree.leaves(states.params)):
            np.testing.assert_allclose(a, b[i], rtol=1e-5, atol=1e-6)
    s1, m1 = train(keys[0], hp)
    s2, m2 = train(keys[0], hp)
    for a, b in zip(jax.tree.leaves((s1.params, s1.target_critic)), jax.tree.leaves((s2.params, s2.target_critic))):
        np.testing.assert_array_equal(a, b)
    assert all(np.isfinite(np.asarray(v)).all() for v in m1.values())
    # Different seeds really give different runs.
    assert not np.array_equal(jax.tree.leaves(states.params)[0][0], jax.tree.leaves(states.params)[0][1])


def test_recoil_never_reads_rewards(random_data):
    ds, env, params = random_data
    noisy = (ds.replace(reward=jax.random.normal(jax.random.PRNGKey(9), ds.reward.shape) * 100.0), env, params)
    runs = []
    for d in (random_data, noisy):
        agent = small_agent(d)
        s, _ = jax.jit(make_train(agent, eval_episodes=0))(jax.random.PRNGKey(1), agent.default_hparams())
        runs.append(jax.tree.leaves(s.params))
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_recoil_losses_match_a_hand_computation():
    f32 = lambda x: np.asarray(x, np.float32)
    # 2 expert transitions, then 3 suboptimal ones; the last is terminal.
    is_expert = np.array([True, True, False, False, False])
    terminated = np.array([False, False, False, False, True])
    q = f32([[9.0, 8.0, 2.0, -1.0, 0.5], [8.5, 7.0, 2.5, -2.0, 1.0]])
    q_bar = f32([8.0, 7.5, 2.0, 10.0, -3.0])
    v = f32([7.0, 7.9, 3.0, 1.0, -1.0])
    next_v = f32([7.5, 6.0, 2.0, 4.0, 100.0])
    log_prob = f32([-0.5, -1.0, -2.0, -0.2, -3.0])
    hp = recoil.default_hparams().replace(beta=jnp.float32(0.3), gamma=jnp.float32(0.9),
                                          expert_reward=jnp.float32(1.5), shift=jnp.float32(-0.5),
                                          temperature=jnp.float32(1.0), tau=jnp.float32(0.8),
                                          awr_beta=jnp.float32(2.0), max_weight=jnp.float32(20.0))
    beta, gamma, r_e, shift = 0.3, 0.9, 1.5, -0.5

    # By hand, in float64 numpy.
    w = np.array([beta / 2, beta / 2, (1 - beta) / 3, (1 - beta) / 3, (1 - beta) / 3])
    c = r_e / (1 - gamma)  # 15
    y = np.array([shift + gamma * next_v[0], shift + gamma * next_v[1], shift + gamma * next_v[2],
                  shift + gamma * next_v[3], shift + gamma * shift / (1 - gamma)])  # terminal: absorbing r̃/(1−γ)
    critic = sum(beta * np.mean((q[i, :2] - c) ** 2) + np.sum(w * (q[i] - y) ** 2) for i in range(2))
    u = q_bar.astype(np.float64) - v
    z = np.minimum(u / 1.0, 7.0)  # u[3] = 9 is clipped to 7
    m = max(z.max(), -1.0)
    gumbel = np.sum(w * (np.exp(z - m) - np.exp(-m) * (z + 1)))
    np.testing.assert_allclose(gumbel, np.exp(-m) * np.sum(w * (np.exp(z) - z - 1)), rtol=1e-12)
    expectile = np.sum(w * np.where(u < 0, 0.2, 0.8) * u ** 2)
    awr = np.minimum(np.exp(2.0 * u), 20.0)  # u[3] hits the clip
    actor = -np.sum(w * awr * log_prob)

    args = (q, q_bar, v, next_v, log_prob, terminated, is_expert, hp)
    for kind, value_loss in (("gumbel", gumbel), ("expectile", expectile)):
        total, m_ = recoil.recoil_losses(*args, value_loss=kind)
        np.testing.assert_allclose(m_["loss/critic"], critic, rtol=1e-5)
        np.testing.assert_allclose(m_["loss/value"], value_loss, rtol=1e-5)
        np.testing.assert_allclose(m_["loss/actor"], actor, rtol=1e-5)
        np.testing.assert_allclose(total, critic + value_loss + actor, rtol=1e-5)

    # Gradients: each loss reaches only its own inputs (targets and advantages are constants).
    g = jax.grad(lambda q_, qb, v_, nv, lp: recoil.recoil_losses(q_, qb, v_, nv, lp, terminated, is_expert, hp)[0],
                 argnums=(0, 1, 2, 3, 4))(q, q_bar, v, next_v, log_prob)
    np.testing.assert_array_equal(g[1], 0.0)
    np.testing.assert_array_equal(g[3], 0.0)
    np.testing.assert_allclose(g[4], -w * awr, rtol=1e-5)
    np.testing.assert_allclose(g[0], 2 * (beta * np.where(is_expert, 0.5, 0.0) * (q - c) + w * (q - y)), rtol=1e-5)
    # ∂/∂V of the stable Gumbel form: −e^(−m)·(e^z − 1)/T where z is not clipped, 0 where it is.
    np.testing.assert_allclose(g[2], np.where(u / 1.0 < 7.0, -w * np.exp(-m) * (np.exp(z) - 1.0), 0.0),
                               rtol=1e-5, atol=1e-7)

    # With uniform weights the weighted value losses are rlx.objectives' own.
    uu = jnp.asarray(u, jnp.float32)
    uniform = jnp.full(5, 0.2)
    np.testing.assert_allclose(recoil.weighted_gumbel(uu, uniform, temperature=1.0),
                               objectives.gumbel(uu, temperature=1.0), rtol=1e-6)
    np.testing.assert_allclose(recoil.weighted_expectile(uu, uniform, tau=0.8), objectives.expectile(uu, tau=0.8),
                               rtol=1e-6)
    np.testing.assert_allclose(recoil.mixture_weights(is_expert, 0.3), w, rtol=1e-6)


def test_bad_inputs_are_rejected_with_named_fields(random_data):
    ds, env, params = random_data
    cfg = recoil.ReCOILConfig()
    e, s = jax.tree.map(lambda x: x[:200], ds), jax.tree.map(lambda x: x[200:1200], ds)
    cart, cart_params = envs.make("CartPole-v1")
    with pytest.raises(ConfigError, match="continuous action space"):
        recoil.make(cfg, e, s, cart, cart_params)
    with pytest.raises(ConfigError, match="continuous action space"):
        bc.make(bc.BCConfig(), s, cart, cart_params)
    wide = e.replace(obs=jnp.zeros((len(e), 5)), next_obs=jnp.zeros((len(e), 5)))
    with pytest.raises(data.DatasetError, match=r"expert: key 'obs' has observation shape \(5,\)"):
        recoil.make(cfg, wide, s, env, params)
    with pytest.raises(data.DatasetError, match=r"dataset: key 'obs' has observation shape \(5,\)"):
        recoil.make(cfg, e, s.replace(obs=jnp.zeros((len(s), 5)), next_obs=jnp.zeros((len(s), 5))), env, params)
    with pytest.raises(data.DatasetError, match=r"dataset: key 'action' has action shape \(2,\)"):
        recoil.make(cfg, e, s.replace(action=jnp.zeros((len(s), 2))), env, params)
    with pytest.raises(ConfigError, match="ReCOILConfig.value_loss='mse' is not accepted; choose one of: "
                                          "gumbel, expectile"):
        recoil.make(recoil.ReCOILConfig(value_loss="mse"), e, s, env, params)
    with pytest.raises(ConfigError, match="ReCOILConfig.batch_size=0: must be a positive integer"):
        recoil.make(recoil.ReCOILConfig(batch_size=0), e, s, env, params)
    with pytest.raises(ConfigError, match="BCConfig.hidden=.*non-empty tuple"):
        bc.make(bc.BCConfig(hidden=()), s, env, params)
    with pytest.raises(ConfigError, match="BCConfig.total_steps=10 is smaller than one iteration"):
        bc.make(bc.BCConfig(total_steps=10, steps_per_iteration=20), s, env, params)


@pytest.mark.parametrize("module", [recoil, bc])
def test_module_interface_for_the_cli(module):
    hp = module.default_hparams()
    assert isinstance(hp, module.Hparams)
    names = [f.name for f in dataclasses.fields(hp)]
    for name in names:
        leaf = getattr(hp, name)
        assert isinstance(leaf, jax.Array) and leaf.shape == () and leaf.dtype == jnp.float32, name
    config_fields = [f.name for f in dataclasses.fields(module.Config)]
    for required in ("total_steps", "steps_per_iteration", "batch_size", "hidden", "normalize_obs"):
        assert required in config_fields
    assert set(module.HELP) == set(config_fields) | set(names)

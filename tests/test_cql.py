"""CQL(H) on the small generated Pendulum-v1 medium dataset; the penalty checked by hand."""
import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import data, envs
from rlx.agents import cql
from rlx.config import ConfigError
from rlx.run import make_train

# Small and fast enough for the 2-core CI machine (the paper's 256×256, batch 256, lrs 1e-4/3e-4
# and γ = 0.99 need far more than a few thousand steps on Pendulum): 64×64 nets, batch 128,
# every lr 1e-3, Polyak 0.02, γ = 0.95. N = 10 sampled actions per source and w = 5 as in the paper.
FAST = dict(total_steps=2500, steps_per_iteration=250, hidden=(64, 64), batch_size=128)
FAST_HP = dict(actor_lr=1e-3, critic_lr=1e-3, alpha_lr=1e-3, polyak=0.02, gamma=0.95)


def _fast_hparams(agent, **extra):
    return agent.default_hparams().replace(**{k: jnp.float32(v) for k, v in {**FAST_HP, **extra}.items()})


def _learns_on_medium(medium, **config):
    ds, env, params = medium
    agent = cql.make(cql.CQLConfig(**FAST, **config), ds, env, params)
    _, metrics = jax.jit(make_train(agent, eval_every=10, eval_episodes=16))(jax.random.PRNGKey(0),
                                                                            _fast_hparams(agent))
    data_score = ds.normalized_score(ds.episode_returns()).mean()
    score = ds.normalized_score(metrics["eval/return"][-1])
    assert 0 < data_score < 60, data_score          # the data really is medium quality
    assert score >= data_score, (score, data_score)
    return metrics


@pytest.mark.slow  # out of CI; at full size in experiments/offline.py (5 seeds on every Pendulum-v1 tier)
def test_cql_beats_its_medium_data(medium):
    metrics = _learns_on_medium(medium)
    np.testing.assert_array_equal(metrics["cql_alpha"], 5.0)  # the fixed weight w


@pytest.mark.slow  # out of CI; at full size in experiments/offline.py (5 seeds on every Pendulum-v1 tier)
def test_cql_lagrange_beats_its_medium_data(medium):
    metrics = _learns_on_medium(medium, lagrange=True)
    # The gap (≈ 4 here) stays below τ_gap = 10, so α' falls from 1 every iteration.
    assert np.all(np.diff(metrics["cql_alpha"]) < 0) and metrics["cql_alpha"][-1] < 1.0, metrics["cql_alpha"]
    assert np.all(metrics["cql_gap"] < 10.0), metrics["cql_gap"]


def test_lagrange_multiplier_moves_towards_the_target_gap(medium):
    """Gap above τ_gap: α' grows; below: it shrinks. Adam's first step on log α' is exactly ±lr."""
    ds, env, params = medium
    agent = cql.make(cql.CQLConfig(total_steps=5, steps_per_iteration=1, hidden=(16, 16), batch_size=32,
                                   lagrange=True), ds, env, params)
    init, update = jax.jit(agent.init), jax.jit(agent.update)
    for target_gap, direction in ((-100.0, +1), (100.0, -1)):
        hp = agent.default_hparams().replace(target_gap=jnp.float32(target_gap), init_cql_alpha=jnp.float32(2.0),
                                             cql_alpha_lr=jnp.float32(0.01))
        state = init(jax.random.PRNGKey(0), hp)
        state, m = update(state, hp)
        assert np.sign(float(m["cql_gap"]) - target_gap) == direction
        np.testing.assert_allclose(state.params["log_cql_alpha"], math.log(2.0) + direction * 0.01, atol=1e-6)
        alphas = [float(m["cql_alpha"])]
        for _ in range(4):
            state, m = update(state, hp)
            alphas.append(float(m["cql_alpha"]))
        np.testing.assert_allclose(alphas[0], 2.0, rtol=1e-6)  # metrics report α' before the step
        assert np.all(direction * np.diff(alphas) > 0), (target_gap, alphas)


def test_cql_vmap_equals_separate_runs_and_is_deterministic(medium):
    ds, env, params = medium
    config = cql.CQLConfig(total_steps=40, steps_per_iteration=20, hidden=(32, 32), batch_size=64, lagrange=True,
                           bc_steps=10)
    agent = cql.make(config, ds, env, params)
    train = jax.jit(make_train(agent, eval_episodes=0))
    hp = agent.default_hparams()
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    states, _ = jax.jit(jax.vmap(make_train(agent, eval_episodes=0), in_axes=(0, None)))(keys, hp)
    for i in range(3):
        s, _ = train(keys[i], hp)
        for a, b in zip(jax.tree.leaves(s.params), jax.tree.leaves(states.params)):
            np.testing.assert_allclose(a, b[i], rtol=1e-5, atol=1e-6)
    s1, m1 = train(keys[0], hp)
    s2, m2 = train(keys[0], hp)
    for a, b in zip(jax.tree.leaves((s1.params, m1)), jax.tree.leaves((s2.params, m2))):
        np.testing.assert_array_equal(a, b)
    for k in ("loss/critic", "loss/actor", "loss/cql", "loss/cql_alpha", "alpha", "cql_alpha", "cql_gap", "q"):
        assert np.all(np.isfinite(m1[k])), k
    # Evaluation acts with tanh of the Gaussian's mean.
    pol = agent.policy(s1)
    obs = jnp.asarray([0.3, -0.9, 1.5])
    dist = cql.nets.TanhGaussianPolicy(1, (32, 32)).apply(pol.actor, obs)
    np.testing.assert_allclose(agent.act(pol, obs, jax.random.PRNGKey(1), deterministic=True),
                               jnp.tanh(dist.distribution.mean()), rtol=1e-6)


def _lse(x, axis=-1):
    m = x.max(axis, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis, keepdims=True)))[..., 0]


def test_cql_penalty_by_hand():
    # Two critics, three states, N = 2 actions per source, |A| = 2: log 0.5^2 = −1.386.
    rng = np.random.default_rng(0)
    q_data = rng.normal(size=(2, 3)).astype(np.float32)
    q_u, q_next, q_cur = (rng.normal(size=(2, 3, 2)).astype(np.float32) * 3 for _ in range(3))
    lp_next, lp_cur = (rng.normal(size=(3, 2)).astype(np.float32) for _ in range(2))
    q_sampled = cql.importance_corrected_q(q_u, q_next, q_cur, lp_next, lp_cur, action_dim=2)
    assert q_sampled.shape == (2, 3, 6)
    expected = np.concatenate([q_u + 2 * np.log(2.0), q_next - lp_next, q_cur - lp_cur], -1)
    np.testing.assert_allclose(q_sampled, expected, rtol=1e-6)
    for temperature in (1.0, 0.5):
        gaps = cql.cql_gaps(jnp.asarray(q_data), q_sampled, temperature)
        want = (temperature * _lse(expected / temperature) - q_data).mean(-1)  # [critics]
        np.testing.assert_allclose(gaps, want, rtol=1e-5)

    # A case worked out on paper: all six corrected values equal 1 and Q(s, a_data) = 0, so
    # every state's gap is logsumexp of six 1s = 1 + log 6; with w = 5 the penalty is 5·(1 + log 6) per critic.
    ones = jnp.ones((1, 1, 2))
    flat = cql.importance_corrected_q(ones * (1 - 2 * math.log(2.0)), ones * 1.5, ones * 3.0,
                                      jnp.full((1, 2), 0.5), jnp.full((1, 2), 2.0), action_dim=2)
    np.testing.assert_allclose(flat, 1.0, rtol=1e-6)
    gap = cql.cql_gaps(jnp.zeros((1, 1)), flat, 1.0)
    np.testing.assert_allclose(gap, [1.0 + math.log(6.0)], rtol=1e-6)
    np.testing.assert_allclose(5.0 * gap, [5.0 + 5.0 * math.log(6.0)], rtol=1e-6)

    # The multiplier's loss −α'·(mean gap − τ) and its gradient in log α' = −α'·(gap − τ).
    gaps = jnp.asarray([3.0, 5.0])
    for tau, sign in ((2.0, -1), (6.0, +1)):
        loss = cql.lagrange_loss(cql.cql_alpha_value(jnp.log(2.0)), gaps, tau)
        np.testing.assert_allclose(loss, -2.0 * (4.0 - tau), rtol=1e-6)
        g = jax.grad(lambda la: cql.lagrange_loss(cql.cql_alpha_value(la), gaps, tau))(jnp.log(2.0))
        np.testing.assert_allclose(g, -2.0 * (4.0 - tau), rtol=1e-5)
        assert np.sign(g) == sign  # gradient descent raises α' exactly when the gap exceeds τ
    np.testing.assert_allclose(cql.cql_alpha_value(jnp.float32(20.0)), 1e6)  # clipped at 1e6


def test_cql_rejects_bad_config_and_data(medium):
    ds, env, params = medium
    cart, cart_params = envs.make("CartPole-v1")
    with pytest.raises(ConfigError, match="continuous action space"):
        cql.make(cql.CQLConfig(), ds, cart, cart_params)
    with pytest.raises(ConfigError, match="reward_scale='linear' is not accepted; choose one of: none, episode_range"):
        cql.make(cql.CQLConfig(reward_scale="linear"), ds, env, params)
    with pytest.raises(ConfigError, match="num_sampled_actions=0: must be a positive integer"):
        cql.make(cql.CQLConfig(num_sampled_actions=0), ds, env, params)
    with pytest.raises(ConfigError, match="num_critics=-1: must be a positive integer"):
        cql.make(cql.CQLConfig(num_critics=-1), ds, env, params)
    with pytest.raises(ConfigError, match="lagrange='yes': must be True or False"):
        cql.make(cql.CQLConfig(lagrange="yes"), ds, env, params)
    with pytest.raises(ConfigError, match="bc_steps=-1: must be a non-negative integer"):
        cql.make(cql.CQLConfig(bc_steps=-1), ds, env, params)
    with pytest.raises(ConfigError, match="bc_steps=100 must be below total_steps=100"):
        cql.make(cql.CQLConfig(total_steps=100, steps_per_iteration=10, bc_steps=100), ds, env, params)
    with pytest.raises(ConfigError, match="total_steps=10 is smaller than one iteration"):
        cql.make(cql.CQLConfig(total_steps=10, steps_per_iteration=20), ds, env, params)
    with pytest.raises(ConfigError, match="hidden"):
        cql.make(cql.CQLConfig(hidden=(64, 0)), ds, env, params)
    with pytest.raises(ConfigError, match="must be a CQLConfig"):
        cql.make(object(), ds, env, params)
    bad = ds.replace(obs=jnp.zeros((len(ds), 5)), next_obs=jnp.zeros((len(ds), 5)))
    with pytest.raises(data.DatasetError, match="observation shape"):
        cql.make(cql.CQLConfig(), bad, env, params)


def test_cql_module_interface_for_the_cli():
    hp = cql.default_hparams()
    for f in dataclasses.fields(hp):
        v = getattr(hp, f.name)
        assert isinstance(v, jax.Array) and v.shape == () and v.dtype == jnp.float32, f.name
    assert cql.Config is cql.CQLConfig and cql.Hparams is cql.CQLHparams
    names = [f.name for f in dataclasses.fields(cql.Config)] + [f.name for f in dataclasses.fields(cql.Hparams)]
    assert sorted(cql.HELP) == sorted(names)
    from rlx import offline_cli

    args = offline_cli.build_parser("cql", cql).parse_args(
        ["--dataset", "x.npz", "--lagrange", "--target-gap", "5,10", "--num-sampled-actions", "4"])
    assert args.lagrange is True and args.target_gap == [5.0, 10.0] and args.num_sampled_actions == 4

"""Dual RL: f-DVL and XQL as value-loss settings of one agent; IQL is the expectile setting."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rlx import objectives
from rlx.agents import dual, iql
from rlx.config import ConfigError
from rlx.run import make_train


def test_value_losses_written_in_u_have_the_dual_gradient():
    """−(1−λ)·mean(u) + λ·mean(f*(u)) has the same gradient in V as (1−λ)·E[V] + λ·E[f*(Q̄−V)]."""
    q = jnp.array([1.0, -2.0, 3.0, 0.5])
    v = jnp.array([0.0, 1.0, -1.0, 0.0])
    for loss, conj in [(dual.chi2_value_loss, objectives.chi2_conjugate), (dual.tv_value_loss, objectives.tv_conjugate)]:
        g_u = jax.grad(lambda v: loss(q - v, lam=0.3))(v)
        g_dual = jax.grad(lambda v: objectives.dual_value_loss(v, q - v, lam=0.3, conjugate=conj))(v)
        np.testing.assert_allclose(g_u, g_dual, rtol=1e-6)
    # Hand check, χ² at u = [1, −3, 4, 0.5], λ = 0.3: ∂/∂V = [0.7 − 0.3·(1 + u/2)·1[u + u²/4 > 0]]/4
    u = q - v
    expected = (0.7 - 0.3 * np.where(u + u**2 / 4 > 0, 1 + u / 2, 0.0)) / 4
    np.testing.assert_allclose(jax.grad(lambda v: dual.chi2_value_loss(q - v, lam=0.3))(v), expected, rtol=1e-6)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=1, max_size=16))
def test_value_losses_stay_finite_for_huge_gaps(values):
    u = jnp.asarray(values, jnp.float32)
    for name, loss in dual.VALUE_LOSSES.items():
        value, grad = jax.value_and_grad(lambda u: loss(u))(u)
        assert np.isfinite(value) and np.isfinite(grad).all(), name


def test_iql_is_the_expectile_setting(medium):
    ds, env, params = medium
    cfg = iql.IQLConfig(total_steps=20, steps_per_iteration=10, hidden=(16, 16))
    a, b = iql.make(cfg, ds, env, params), dual.make(cfg, ds, env, params, divergence="expectile")
    hp = a.default_hparams()
    sa, ma = jax.jit(a.update)(a.init(jax.random.PRNGKey(0), hp), hp)
    sb, mb = jax.jit(b.update)(b.init(jax.random.PRNGKey(0), hp), hp)
    for x, y in zip(jax.tree.leaves(sa.params), jax.tree.leaves(sb.params)):
        np.testing.assert_array_equal(x, y)


def test_unknown_divergence(medium):
    ds, env, params = medium
    with pytest.raises(ConfigError, match="divergence='kl' is not accepted; choose one of: chi2, tv, rkl, xql"):
        dual.make(iql.IQLConfig(), ds, env, params, divergence="kl")


@pytest.mark.slow  # out of CI; at full size in experiments/offline.py (5 seeds on every Pendulum-v1 tier)
@pytest.mark.parametrize("divergence", ["chi2", "tv"])
def test_fdvl_learns_on_medium_data(medium, divergence):
    ds, env, params = medium
    # 128×128 networks: measured 65–76 (χ²) and 53–71 (TV) over seeds 0–2 against data scoring 21.
    # (At 64×64 TV depended on the exact dataset: 41–68 on one draw of it, 9 on the next.)
    agent = dual.make(iql.IQLConfig(total_steps=4000, steps_per_iteration=500, hidden=(128, 128)), ds, env, params,
                      divergence)
    _, metrics = jax.jit(make_train(agent, eval_every=8, eval_episodes=16))(jax.random.PRNGKey(0),
                                                                           agent.default_hparams())
    data_score = ds.normalized_score(ds.episode_returns()).mean()
    score = ds.normalized_score(metrics["eval/return"][-1])
    assert score >= data_score, (divergence, score, data_score)

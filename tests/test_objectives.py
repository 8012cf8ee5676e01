"""Tests for rlx.objectives: hand-computed values, drift properties, registry."""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rlx import objectives as obj
from rlx.objectives import PolicyBatch

def f32(x):
    """Nearest float32 at or above x, as a Python float (hypothesis needs exact bounds)."""
    y = np.float32(x)
    return float(y if y >= x else np.nextafter(y, np.float32(np.inf)))


FAST = settings(max_examples=50, deadline=None)
B = 16
# Eager jax.random is slow to dispatch; the jitted inits compile once for the whole file.
lpo_init = jax.jit(obj.lpo_init)
ta_lpo_init = jax.jit(obj.ta_lpo_init)


def make_batch(ratio, advantage, progress=0.0, horizon=100.0):
    return PolicyBatch(
        log_ratio=jnp.log(jnp.asarray(ratio, jnp.float32)),
        advantage=jnp.asarray(advantage, jnp.float32),
        progress=jnp.asarray(progress, jnp.float32),
        horizon=jnp.asarray(horizon, jnp.float32),
    )


def close(x, y, tol=1e-5):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=tol, atol=tol)


# --------------------------------------------------------------------------------------
# PPO
# --------------------------------------------------------------------------------------


def test_ppo_clip_hand_values():
    # eps = 0.2:
    #   r=1.5 A= 2: min(3.0, 1.2*2=2.4)     = 2.4
    #   r=0.5 A= 2: min(1.0, 0.8*2=1.6)     = 1.0
    #   r=1.5 A=-1: min(-1.5, 1.2*-1=-1.2)  = -1.5
    #   r=0.5 A=-1: min(-0.5, 0.8*-1=-0.8)  = -0.8
    #   r=1.1 A= 3: min(3.3, 3.3)           = 3.3
    # sum = 4.4, mean = 0.88, loss = -0.88
    batch = make_batch([1.5, 0.5, 1.5, 0.5, 1.1], [2.0, 2.0, -1.0, -1.0, 3.0])
    close(obj.ppo_clip(batch, epsilon=0.2), -0.88)
    # eps = 0.6: r=1.5 and 0.5 are inside [0.4, 1.6], nothing clipped:
    # mean(3, 1, -1.5, -0.5, 3.3) = 5.3/5 = 1.06
    close(obj.ppo_clip(batch, epsilon=0.6), -1.06)


def test_ppo_drift_hand_values():
    # r=1.5 A=2: (1.5-1.2)*2 = 0.6 ; r=0.5 A=-1: (0.5-0.8)*-1 = 0.3 ; others 0
    d = obj.ppo_drift(jnp.array([1.5, 0.5, 1.5, 0.5, 1.1]), jnp.array([2.0, 2.0, -1.0, -1.0, 3.0]))
    close(d, [0.6, 0.0, 0.0, 0.3, 0.0])


def test_ppo_clip_equals_mirror_learning_with_ppo_drift():
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    log_ratio = 0.5 * jax.random.normal(k1, (256,))
    adv = 3.0 * jax.random.normal(k2, (256,))

    def clip_form(lr, eps):
        return obj.ppo_clip(PolicyBatch(lr, adv, jnp.array(0.3), jnp.array(50.0)), epsilon=eps)

    def mirror_form(lr, eps):
        r = jnp.exp(lr)
        return obj.mirror_learning_loss(r, adv, obj.ppo_drift(r, adv, epsilon=eps))

    both = jax.jit(
        jax.vmap(
            lambda eps: (
                jax.value_and_grad(clip_form)(log_ratio, eps),
                jax.value_and_grad(mirror_form)(log_ratio, eps),
            )
        )
    )
    (v1, g1), (v2, g2) = both(jnp.array([0.1, 0.2, 0.3]))
    close(v1, v2)
    close(g1, g2)  # the gradients w.r.t. the log-ratio agree too
    assert float(jnp.abs(v1[0] - v1[2])) > 1e-3  # epsilon matters on this batch


# --------------------------------------------------------------------------------------
# Drift properties (hypothesis)
# --------------------------------------------------------------------------------------


def _ppo(r, a, seed, progress, horizon):
    return obj.ppo_drift(r, a, epsilon=0.05 + 0.45 * progress)


def _dpo(r, a, seed, progress, horizon):
    return obj.dpo_drift(r, a)


def _lpo(r, a, seed, progress, horizon):
    return obj.lpo_drift(r, a, params=obj.lpo_init(jax.random.PRNGKey(seed)))


def _lpo_ppo_init(r, a, seed, progress, horizon):
    params = obj.lpo_init(jax.random.PRNGKey(seed), scale=3.0)
    return obj.lpo_drift(r, a, params=params, ppo_weight=1.0, epsilon=0.2)


def _ta_lpo(r, a, seed, progress, horizon):
    params = obj.ta_lpo_init(jax.random.PRNGKey(seed), scale=3.0)
    return obj.ta_lpo_drift(r, a, progress, horizon, params=params, ppo_weight=progress)


DRIFTS = {"ppo": _ppo, "dpo": _dpo, "lpo": _lpo, "lpo_ppo_init": _lpo_ppo_init, "ta_lpo": _ta_lpo}


@functools.lru_cache(maxsize=None)
def _checker(name):
    drift = DRIFTS[name]

    @jax.jit
    def check(r, a, seed, progress, horizon):
        value = drift(r, a, seed, progress, horizon)
        ones = jnp.ones_like(r)
        at_one = drift(ones, a, seed, progress, horizon)
        # elementwise drift: grad of the sum is the per-sample derivative
        grad_at_one = jax.grad(lambda x: jnp.sum(drift(x, a, seed, progress, horizon)))(ones)
        return value, at_one, grad_at_one

    return check


ratios = hnp.arrays(np.float32, (B,), elements=st.floats(f32(0.05), 20.0, width=32))
advantages = hnp.arrays(np.float32, (B,), elements=st.floats(-50.0, 50.0, width=32))


@pytest.mark.parametrize("name", sorted(DRIFTS))
@FAST
@given(
    r=ratios,
    a=advantages,
    seed=st.integers(0, 2**31 - 1),
    progress=st.floats(0.0, 1.0),
    horizon=st.integers(1, 10**7),
)
def test_drift_nonnegative_and_flat_at_one(name, r, a, seed, progress, horizon):
    value, at_one, grad_at_one = _checker(name)(
        r, a, jnp.uint32(seed), jnp.float32(progress), jnp.float32(horizon)
    )
    value, at_one, grad_at_one = map(np.asarray, (value, at_one, grad_at_one))
    assert value.shape == (B,)
    assert np.all(np.isfinite(value))
    assert np.all(value >= 0.0)
    assert np.all(at_one == 0.0)
    assert np.all(grad_at_one == 0.0)


def test_drifts_are_positive_somewhere():
    # The properties above would also hold for a drift that is identically 0.
    r = jnp.array([3.0, 0.3, 3.0, 0.3])
    a = jnp.array([5.0, -5.0, -5.0, 5.0])
    assert float(obj.dpo_drift(r, a).max()) > 0.1
    assert float(obj.ppo_drift(r, a).max()) > 0.1
    params = lpo_init(jax.random.PRNGKey(1))
    assert float(jax.jit(obj.lpo_drift)(r, a, params=params).max()) > 1e-3


def test_lpo_drift_hand_network():
    # One hidden unit that reads the (r-1) feature (index 2): net = tanh(r - 1).
    w1 = jnp.zeros((8, 1)).at[2, 0].set(1.0)
    params = {"w1": w1, "w2": jnp.ones((1, 1))}
    r = jnp.array([1.5, 0.5])
    a = jnp.array([2.0, 2.0])
    # r=1.5: tanh(0.5) - 1e-4 = 0.46211716 - 0.0001 = 0.46201716 ; r=0.5: tanh(-0.5) < 0 -> 0
    close(obj.lpo_drift(r, a, params=params), [0.46201716, 0.0])
    # PPO-initialised: + (1.5 - 1.2)*2 = 0.6 -> 1.06201716 ; r=0.5, A=2: PPO drift 0 -> 0
    close(obj.lpo_drift(r, a, params=params, ppo_weight=1.0), [1.06201716, 0.0])
    # Feature 6 is A*(r-1): net = tanh(2*0.5) = tanh(1) = 0.76159416
    params6 = {"w1": jnp.zeros((8, 1)).at[6, 0].set(1.0), "w2": jnp.ones((1, 1))}
    close(obj.lpo_drift(r[:1], a[:1], params=params6), [0.76159416 - 1e-4])


def test_ta_lpo_drift_hand_network():
    r, a = jnp.array([1.5]), jnp.array([1.0])
    # index 8 + 2 = (r-1)*progress: tanh(0.5*0.5) = tanh(0.25) = 0.24491866
    p_prog = {"w1": jnp.zeros((24, 1)).at[10, 0].set(1.0), "w2": jnp.ones((1, 1))}
    close(obj.ta_lpo_drift(r, a, 0.5, 100.0, params=p_prog), [0.24491866 - 1e-4])
    # index 16 + 2 = (r-1)*log N, N = e^2: tanh(0.5*2) = tanh(1) = 0.76159416
    p_hor = {"w1": jnp.zeros((24, 1)).at[18, 0].set(1.0), "w2": jnp.ones((1, 1))}
    close(obj.ta_lpo_drift(r, a, 0.5, math.exp(2.0), params=p_hor), [0.76159416 - 1e-4], tol=1e-4)
    # progress 0 switches the progress-channel off entirely
    close(obj.ta_lpo_drift(r, a, 0.0, 100.0, params=p_prog), [0.0])


def test_lpo_wrong_param_shapes_fail_clearly():
    params = lpo_init(jax.random.PRNGKey(0))
    batch = make_batch([1.2], [1.0])
    with pytest.raises(ValueError, match=r"ta_lpo_drift: params must have shapes w1 \(24, H\)"):
        obj.ta_lpo(batch, params=params)
    with pytest.raises(ValueError, match="keys 'w1' and 'w2'"):
        obj.lpo(batch, params={"w1": params["w1"]})


def test_gradients_flow_into_lpo_params():
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(3), 3)
    batch = PolicyBatch(
        0.4 * jax.random.normal(k1, (128,)), jax.random.normal(k2, (128,)),
        jnp.array(0.5), jnp.array(200.0),
    )
    for loss, init in ((obj.lpo, lpo_init), (obj.ta_lpo, ta_lpo_init)):
        params = init(k3)
        # into the weights, and into ppo_weight (a float hparam, so it can be evolved too)
        grads, gw = jax.jit(
            jax.grad(lambda p, w: loss(batch, params=p, ppo_weight=w), argnums=(0, 1))
        )(params, 1.0)
        for g in jax.tree_util.tree_leaves(grads):
            assert np.all(np.isfinite(g))
            assert float(jnp.abs(g).max()) > 0.0
        assert np.isfinite(gw) and gw != 0.0


def test_lpo_vmaps_over_population():
    batch = make_batch([1.5, 0.6, 1.1], [1.0, -2.0, 0.5])
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    params = jax.vmap(lpo_init)(keys)
    weights = jnp.array([0.0, 1.0, 0.0, 1.0])
    losses = jax.jit(jax.vmap(lambda p, w: obj.lpo(batch, params=p, ppo_weight=w)))(params, weights)
    second = jax.tree_util.tree_map(lambda x: x[1], params)
    one = jax.jit(obj.lpo)(batch, params=second, ppo_weight=1.0)
    assert losses.shape == (4,)
    close(losses[1], one)


# --------------------------------------------------------------------------------------
# DPO
# --------------------------------------------------------------------------------------


def test_dpo_drift_hand_values():
    r = jnp.array([2.0, 0.5, 0.5, 2.0, 1.5, 0.8])
    a = jnp.array([1.0, 1.0, -1.0, -1.0, 3.0, -2.0])
    expected = [
        1.0 - 2.0 * math.tanh(0.5),  # A>=0: x=(2-1)*1=1 ; 1 - 2 tanh(1/2) = 0.0757657
        0.0,  # A>=0, r<1: x=-0.5 -> x - 2 tanh(x/2) < 0 -> 0
        0.20145660,  # A<0: y=log(.5)*-1=0.693147 ; y - 0.6 tanh(y/0.6)
        0.0,  # A<0, r>1: y=-0.693 < 0 -> 0
        0.22970210,  # A>=0: x=(1.5-1)*3=1.5 ; 1.5 - 2 tanh(0.75) = 1.5 - 1.27029790
        0.06742151,  # A<0: y=-2 log 0.8=0.446287 ; y - 0.6 tanh(y/0.6)
    ]
    close(obj.dpo_drift(r, a), expected)
    # loss = -mean(r*A - drift); r*A = [2, .5, -.5, -2, 4.5, -1.6], sum 2.9
    drift_sum = 0.07576569 + 0.20145660 + 0.22970210 + 0.06742151  # 0.57434590
    close(obj.dpo(make_batch(r, a)), -(2.9 - drift_sum) / 6)


# --------------------------------------------------------------------------------------
# KL objectives
# --------------------------------------------------------------------------------------


@FAST
@given(hnp.arrays(np.float32, (B,), elements=st.floats(-5.0, 5.0, width=32)))
def test_kl_estimators_nonnegative(log_ratio):
    assert np.all(np.asarray(obj.kl_old_new(log_ratio)) >= 0.0)
    assert np.all(np.asarray(obj.kl_new_old(log_ratio)) >= 0.0)


def test_kl_estimators_hand_values_and_zero_at_zero():
    # log r = log 2: old||new k3 = (2-1) - log 2 = 0.30685282 ; new||old = 2 log 2 - 1 = 0.38629436
    close(obj.kl_old_new(jnp.log(2.0)), 0.30685282)
    close(obj.kl_new_old(jnp.log(2.0)), 0.38629436)
    for kl in (obj.kl_old_new, obj.kl_new_old):
        assert float(kl(0.0)) == 0.0
        assert float(jax.grad(kl)(0.0)) == 0.0


def test_kl_penalty_hand_value():
    # r=2, A=1, beta=0.5: -(2 - 0.5*0.30685282) = -1.84657359
    batch = make_batch([2.0], [1.0])
    close(obj.kl_penalty(batch, beta=0.5), -1.84657359)
    close(obj.kl_penalty_adaptive(batch, beta=0.5, kl_target=0.01), -1.84657359)


def test_adaptive_kl_doubles_and_halves_beta():
    s = obj.get("kl_penalty_adaptive")
    hp = s.init(jax.random.PRNGKey(0))
    close(hp["beta"], 1.0)
    close(hp["kl_target"], 0.01)
    adapted = s.adapt_init(hp)
    assert set(adapted) == {"beta"}
    close(s.adapt(adapted, hp, jnp.array(0.02))["beta"], 2.0)  # 0.02 > 0.015
    close(s.adapt(adapted, hp, jnp.array(0.005))["beta"], 0.5)  # 0.005 < 0.00667
    close(s.adapt(adapted, hp, jnp.array(0.01))["beta"], 1.0)  # within band
    # jittable and vmappable over a population of measured KLs
    kls = jnp.array([0.02, 0.005, 0.01])
    betas = jax.jit(jax.vmap(lambda k: s.adapt(adapted, hp, k)["beta"]))(kls)
    close(betas, [2.0, 0.5, 1.0])
    # the adapted beta overrides the hparam when calling the loss
    batch = make_batch([2.0], [1.0])
    close(s.loss(batch, **{**hp, "beta": jnp.array(0.5)}), -1.84657359)


def test_mdpo_kl_weight_grows_with_progress():
    # r=2, A=1: r*A = 2, KL(new||old) estimate = 2 log 2 - 1 = 0.38629436
    # loss = -2 + kl / max(1 - progress, 0.05)
    kl = 0.38629436
    for progress, weight in ((0.0, 1.0), (0.5, 2.0), (0.9, 10.0), (0.99, 20.0), (1.0, 20.0)):
        batch = make_batch([2.0], [1.0], progress=progress)
        close(obj.mdpo(batch), -2.0 + weight * kl, tol=1e-4)
    losses = [float(obj.mdpo(make_batch([2.0], [1.0], progress=p))) for p in (0.0, 0.3, 0.6, 0.9)]
    assert losses == sorted(losses) and losses[0] < losses[-1]
    # min_temperature = 0.5: at progress 0.9 the weight is 1/0.5 = 2
    close(obj.mdpo(make_batch([2.0], [1.0], progress=0.9), min_temperature=0.5), -2.0 + 2 * kl)


# --------------------------------------------------------------------------------------
# Value losses
# --------------------------------------------------------------------------------------


def test_squared_error_and_huber_hand_values():
    # diffs [0.5, 3, -2]: squares 0.25 + 9 + 4 = 13.25 ; mean 4.41666667
    pred, target = jnp.array([1.5, 3.0, -2.0]), jnp.array([1.0, 0.0, 0.0])
    close(obj.squared_error(pred, target), 13.25 / 3)
    # huber delta=1: 0.5*0.25 = 0.125 ; 1*(3-0.5) = 2.5 ; 1*(2-0.5) = 1.5 ; mean 4.125/3
    close(obj.huber(pred, target), 4.125 / 3)
    # delta=2.5: 0.125 ; 2.5*(3-1.25) = 4.375 ; 0.5*4 = 2 ; mean 6.5/3
    close(obj.huber(pred, target, delta=2.5), 6.5 / 3)


def test_clipped_value_loss_hand_values():
    # eps=0.2:
    #  v=1.5 old=1.0 y=2.0: (1.5-2)^2=0.25 ; clipped 1.2 -> 0.64  ; max 0.64
    #  v=0.9 old=1.0 y=0.0: 0.81         ; clipped 0.9 -> 0.81  ; max 0.81
    #  v=2.0 old=1.0 y=3.0: 1.0          ; clipped 1.2 -> 3.24  ; max 3.24
    # 0.5 * mean = 0.5 * 4.69 / 3 = 0.78166667
    v, old, y = jnp.array([1.5, 0.9, 2.0]), jnp.array([1.0, 1.0, 1.0]), jnp.array([2.0, 0.0, 3.0])
    close(obj.clipped_value_loss(v, old, y, epsilon=0.2), 0.78166667)
    # a big epsilon turns it into 0.5 * MSE: 0.5 * (0.25 + 0.81 + 1) / 3 = 0.34333333
    close(obj.clipped_value_loss(v, old, y, epsilon=10.0), 0.34333333)


def test_expectile_hand_values_and_gradient():
    # tau=0.7, u=[2, -1]: 0.7*4 = 2.8 ; 0.3*1 = 0.3 ; mean 1.55
    u = jnp.array([2.0, -1.0])
    close(obj.expectile(u, tau=0.7), 1.55)
    # d/du = 2*w*u / 2 = [0.7*2, 0.3*-1] = [1.4, -0.3]
    close(jax.grad(lambda x: obj.expectile(x, tau=0.7))(u), [1.4, -0.3])
    # tau = 0.5 is half the MSE: 0.5 * (4 + 1) / 2 = 1.25
    close(obj.expectile(u, tau=0.5), 1.25)


def test_conjugates_hand_values_and_gradients():
    x = jnp.array([2.0, -1.0, 0.0, -6.0])
    # chi2: 2 + 1 = 3 ; -1 + 0.25 < 0 -> 0 ; 0 ; -6 + 9 = 3
    close(obj.chi2_conjugate(x), [3.0, 0.0, 0.0, 3.0])
    # d/dx (x + x^2/4) = 1 + x/2: at 2 -> 2 ; at -1 clamped -> 0 ; at -6 -> -2
    g = jax.vmap(jax.grad(obj.chi2_conjugate))(jnp.array([2.0, -1.0, -6.0]))
    close(g, [2.0, 0.0, -2.0])
    close(obj.tv_conjugate(x), [2.0, 0.0, 0.0, 0.0])
    g = jax.vmap(jax.grad(obj.tv_conjugate))(jnp.array([1.5, -1.0]))
    close(g, [1.0, 0.0])


def test_dual_value_loss_hand_values():
    v, u = jnp.array([1.0, 2.0]), jnp.array([2.0, -1.0])
    # lam=0.5, chi2: 0.5*mean(v)=0.75 ; 0.5*mean(3, 0)=0.75 ; total 1.5
    close(obj.dual_value_loss(v, u, lam=0.5), 1.5)
    # tv, lam=0.25: 0.75*1.5 = 1.125 ; 0.25*mean(2, 0) = 0.25 ; total 1.375
    close(obj.dual_value_loss(v, u, lam=0.25, conjugate=obj.tv_conjugate), 1.375)
    # reverse KL: a scalar gumbel loss is accepted as the conjugate term
    uu = jnp.array([0.0, 1.0])
    close(obj.dual_value_loss(v, uu, lam=0.5, conjugate=obj.gumbel), 0.75 + 0.5 * 0.13212056)


def test_gumbel_hand_values_and_gradient():
    # u=[0, 1], T=1: z=[0, 1], m=1 ; e^-1 * mean(0, e - 2) = (1 - 2/e)/2 = 0.13212056
    u = jnp.array([0.0, 1.0])
    close(obj.gumbel(u), 0.13212056)
    # dL/du_i = e^-m (e^z_i - 1) / (T B): [0, (1 - 1/e)/2 = 0.31606028]
    close(jax.grad(obj.gumbel)(u), [0.0, 0.31606028])
    # all very negative: max z = -3 < -1 so m = -1 ; e * mean(e^-5 + 4, e^-3 + 2) = 8.23167095
    close(obj.gumbel(jnp.array([-5.0, -3.0])), 8.23167095)
    # T=2 halves z: u=[0, 2] gives the same value as u=[0, 1] at T=1
    close(obj.gumbel(jnp.array([0.0, 2.0]), temperature=2.0), 0.13212056)
    # above the clip the gradient vanishes: z = 10 -> 7
    assert float(jax.grad(obj.gumbel)(jnp.array([0.0, 10.0]))[1]) == 0.0


@jax.jit
def _gumbel_value_and_grad(u, temperature):
    return jax.value_and_grad(lambda x: obj.gumbel(x, temperature=temperature))(u)


@FAST
@given(
    u=hnp.arrays(np.float32, (B,), elements=st.floats(-1e4, 1e4, width=32)),
    temperature=st.floats(0.1, 10.0),
)
def test_gumbel_finite_for_extreme_u(u, temperature):
    value, grad = _gumbel_value_and_grad(u, jnp.float32(temperature))
    assert np.isfinite(value) and float(value) >= -1e-3 * max(1.0, abs(float(value)))
    assert np.all(np.isfinite(grad))
    # gradient w.r.t. u has the sign of (e^z - 1), i.e. of u (0 where clipped)
    g = np.asarray(grad)
    assert np.all(g[u > 1e-3] >= 0.0) and np.all(g[u < -1e-3] < 0.0)


# --------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------


def test_registry_names_and_unknown_name():
    assert obj.names() == [
        "dpo", "kl_penalty", "kl_penalty_adaptive", "lpo", "mdpo", "ppo_clip", "ta_lpo",
    ]
    with pytest.raises(ValueError) as err:
        obj.get("foo")
    msg = str(err.value)
    assert "unknown objective 'foo'" in msg
    for name in obj.names():
        assert name in msg


def test_registry_defaults_run_every_objective():
    batch = make_batch([1.3, 0.7, 1.0, 2.0], [1.0, -1.0, 0.5, -0.3], progress=0.4, horizon=500.0)
    for name in obj.names():
        s = obj.get(name)
        hp = s.init(jax.random.PRNGKey(0))
        if s.adapt_init is not None:
            hp = {**hp, **s.adapt_init(hp)}
        loss = jax.jit(lambda b, h: s.loss(b, **h))(batch, hp)
        assert loss.shape == () and np.isfinite(loss), name
    close(obj.get("ppo_clip").init(None)["epsilon"], 0.2)
    assert obj.get("lpo").init(jax.random.PRNGKey(0))["params"]["w1"].shape == (8, 128)
    assert obj.get("ta_lpo").init(jax.random.PRNGKey(0))["params"]["w1"].shape == (24, 128)


def test_user_function_plugs_in(monkeypatch):
    monkeypatch.setattr(obj, "_REGISTRY", dict(obj._REGISTRY))  # leave the real one alone

    def mine(batch, *, k=0.1):
        return -jnp.mean(batch.ratio * batch.advantage) + k

    s = obj.as_surrogate(mine)
    hp = s.init(jax.random.PRNGKey(0))
    assert set(hp) == {"k"}
    close(hp["k"], 0.1)

    registered = obj.register("mine", mine)
    assert obj.get("mine") is registered
    assert "mine" in obj.names()
    close(registered.init(jax.random.PRNGKey(0))["k"], 0.1)
    # r=2 A=1 and r=1 A=3: -mean(2, 3) + 0.1 = -2.4
    close(registered.loss(make_batch([2.0, 1.0], [1.0, 3.0]), k=0.1), -2.4)
    # get() also passes callables through
    assert obj.get(mine).init(None)["k"] == registered.init(None)["k"]
    with pytest.raises(ValueError, match="already registered"):
        obj.register("mine", mine)
    obj.register("mine", obj.get("dpo"), overwrite=True)
    assert obj.get("mine") is obj.get("dpo")

    def bad(batch, *, k):
        return jnp.sum(batch.ratio) * k

    with pytest.raises(ValueError, match="no default"):
        obj.register("bad", bad)


def test_td3bc_actor_by_hand():
    """Q = [1, −3]: mean Q = −1, mean|Q| = 2, so λ = α/mean|Q| = 1.25 and −λ·mean Q = 1.25.
    BC: mean over batch and action dims of (π − a)² = mean([0.25, 0, 1, 4]) = 1.3125."""
    q = jnp.array([1.0, -3.0])
    pi = jnp.array([[0.5, 0.0], [1.0, 2.0]])
    a = jnp.array([[0.0, 0.0], [0.0, 0.0]])
    loss = obj.td3bc_actor(q, pi, a, alpha=2.5)
    np.testing.assert_allclose(loss, -1.25 * -1.0 + 1.3125, rtol=1e-6)
    # λ is a constant: the gradient in Q is −λ/B per entry
    np.testing.assert_allclose(jax.grad(lambda q: obj.td3bc_actor(q, pi, a, alpha=2.5))(q), [-0.625, -0.625])


def test_cql_penalty_by_hand():
    """T·logsumexp(q/T) − q_data, averaged: rows [0, 0] → log 2, [1, 3] → log(e + e³)."""
    q_data = jnp.array([0.5, 2.0])
    q_sampled = jnp.array([[0.0, 0.0], [1.0, 3.0]])
    expected = np.mean([np.log(2.0) - 0.5, np.log(np.e + np.e**3) - 2.0])
    np.testing.assert_allclose(obj.cql_penalty(q_data, q_sampled), expected, rtol=1e-6)
    t = 2.0
    expected_t = np.mean([t * np.log(2.0) - 0.5, t * np.log(np.exp(0.5) + np.exp(1.5)) - 2.0])
    np.testing.assert_allclose(obj.cql_penalty(q_data, q_sampled, temperature=t), expected_t, rtol=1e-6)


def test_awr_weights_by_hand():
    adv = jnp.array([0.0, 1.0, 10.0])
    np.testing.assert_allclose(obj.awr_weights(adv, beta=2.0, max_weight=100.0),
                               [1.0, np.exp(2.0), 100.0], rtol=1e-6)
    lp = jnp.array([-1.0, -2.0, -3.0])
    np.testing.assert_allclose(obj.awr_actor(lp, adv, beta=2.0, max_weight=100.0),
                               -np.mean([1.0 * -1.0, np.exp(2.0) * -2.0, 100.0 * -3.0]), rtol=1e-6)
    assert np.all(jax.grad(lambda a: obj.awr_actor(lp, a).sum())(adv) == 0)  # weights are constants

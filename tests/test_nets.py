"""rlx.nets: the dense layer's custom backward pass and the orthogonal initializer."""
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import nets


@pytest.mark.parametrize("outputs", [4, 1])  # 1: a head, whose weight gradient transposes g instead of x
@pytest.mark.parametrize("x_shape", [(7, 3), (2, 5, 3), (3,)])
def test_matmul_gradients_equal_autodiff_of_a_plain_matmul(x_shape, outputs):
    kx, kw, kg = jax.random.split(jax.random.PRNGKey(0), 3)
    x = jax.random.normal(kx, x_shape)
    w = jax.random.normal(kw, (3, outputs))
    probe = jax.random.normal(kg, x_shape[:-1] + (outputs,))  # a non-uniform cotangent

    def loss(f):
        return lambda x, w: jnp.sum(jnp.tanh(f(x, w)) * probe)

    ours = jax.grad(loss(nets.matmul), argnums=(0, 1))(x, w)
    plain = jax.grad(loss(jnp.matmul), argnums=(0, 1))(x, w)
    np.testing.assert_allclose(nets.matmul(x, w), x @ w, rtol=1e-6)
    for a, b in zip(ours, plain):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("x_shape, w_shape, small", [((4, 4), (4, 64), True), ((2, 8, 64), (64, 64), True),
                                                     ((4, 64), (64, 2), True), ((17, 4), (4, 64), False),
                                                     ((4, 4), (4, 65), False)])
def test_tiny_products_outside_autodiff_are_a_multiply_and_sum_with_the_same_numbers(x_shape, w_shape, small):
    x = jax.random.normal(jax.random.PRNGKey(0), x_shape)
    w = jax.random.normal(jax.random.PRNGKey(1), w_shape)
    np.testing.assert_allclose(jax.jit(nets.matmul)(x, w), x @ w, rtol=1e-5, atol=1e-5)
    # at most SMALL_ROWS rows and a weight of at most SMALL_WIDTH²: no dot in the program
    assert ("dot_general" not in str(jax.make_jaxpr(nets.matmul)(x, w))) == small
    # under vmap the rule sees one example's shape, and the numbers are the same
    xs, ws = jnp.stack([x, 2 * x]), jnp.stack([w, -w])
    np.testing.assert_allclose(jax.vmap(nets.matmul)(xs, ws), jax.vmap(jnp.matmul)(xs, ws), rtol=1e-5, atol=1e-5)
    # gradients take the custom backward pass whatever the size
    g = jax.grad(lambda w: jnp.sum(jnp.tanh(nets.matmul(x, w))))(w)
    np.testing.assert_allclose(g, jax.grad(lambda w: jnp.sum(jnp.tanh(x @ w)))(w), rtol=1e-5, atol=1e-5)


def test_matmul_gradients_under_vmap_and_second_order():
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 6, 3))  # 4 runs of a batch of 6
    w = jax.random.normal(jax.random.PRNGKey(2), (4, 3, 2))
    per_run = lambda f: jax.vmap(jax.grad(lambda x, w: jnp.sum(jnp.sin(f(x, w))), argnums=1))
    np.testing.assert_allclose(per_run(nets.matmul)(x, w), per_run(jnp.matmul)(x, w), rtol=1e-5, atol=1e-6)
    # reverse-over-reverse goes through the custom backward pass
    hess = lambda f: jax.grad(lambda w: jnp.sum(jax.grad(lambda w: jnp.sum(jnp.sin(f(x[0], w))))(w) ** 2))
    np.testing.assert_allclose(hess(nets.matmul)(w[0]), hess(jnp.matmul)(w[0]), rtol=1e-4, atol=1e-5)


def test_every_dense_layer_uses_the_custom_matmul():
    net = nets.ValueNet((8, 8))
    params = net.init(jax.random.PRNGKey(0), jnp.zeros(3))
    loss = lambda p: net.apply(p, jnp.ones((5, 3))).sum()
    assert str(jax.make_jaxpr(loss)(params)).count("custom_vjp_call") == 3  # two hidden layers and the output
    # the backward pass materialises xᵀ once per hidden layer; the 1-output head gᵀ and (gᵀx)ᵀ
    assert str(jax.make_jaxpr(jax.grad(loss))(params)).count("optimization_barrier") == 2 + 2
    assert set(params["params"]) == {"MLP_0", "Dense_0"}  # flax names are those of nn.Dense


def test_mlp_with_a_transposed_first_layer_has_exact_gradients_of_first_and_second_order(monkeypatch):
    # A narrow input and wide layers: the first layer also computes its output transposed,
    # for the second layer's weight gradient (nets.Dense(transposed=True)).
    hidden = (nets.WIDE_LAYER, nets.WIDE_LAYER)
    x = jax.random.normal(jax.random.PRNGKey(0), (9, 3))
    net = nets.ValueNet(hidden)
    params = net.init(jax.random.PRNGKey(1), x)
    loss = lambda apply: lambda p: jnp.sum(jnp.sin(apply(p, x)))
    ours, ref = loss(net.apply), loss(_reference_value_net)
    # the path is taken: one more matmul in the gradient's program (Wᵀxᵀ) than without it
    dots = lambda f: str(jax.make_jaxpr(jax.grad(f))(params)).count("dot_general")
    with_it = dots(ours)
    monkeypatch.setattr(nets, "TRANSPOSED_FIRST_LAYER", False)
    assert with_it == dots(ours) + 1
    monkeypatch.undo()
    for a, b in zip(jax.tree.leaves(jax.grad(ours)(params)), jax.tree.leaves(jax.grad(ref)(params))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    grad_norm = lambda f: lambda p: sum(jnp.sum(g ** 2) for g in jax.tree.leaves(jax.grad(f)(p)))
    for a, b in zip(jax.tree.leaves(jax.grad(grad_norm(ours))(params)),
                    jax.tree.leaves(jax.grad(grad_norm(ref))(params))):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def _reference_value_net(p, x):
    """The same network in plain jnp: tanh MLP, scalar head."""
    h = x
    mlp = p["params"]["MLP_0"]
    for i in range(len(mlp)):
        h = jnp.tanh(h @ mlp[f"Dense_{i}"]["kernel"] + mlp[f"Dense_{i}"]["bias"])
    head = p["params"]["Dense_0"]
    return (h @ head["kernel"] + head["bias"])[..., 0]


def test_dense_with_an_explicit_precision_is_flax_dense():
    x = jax.random.normal(jax.random.PRNGKey(0), (5, 3))
    ours = nets.Dense(4, precision=jax.lax.Precision.HIGHEST)
    params = ours.init(jax.random.PRNGKey(1), x)
    reference = nn.Dense(4, precision=jax.lax.Precision.HIGHEST)
    np.testing.assert_allclose(ours.apply(params, x), reference.apply(params, x), rtol=1e-6)
    assert "custom_vjp_call" not in str(jax.make_jaxpr(lambda p: ours.apply(p, x))(params))


def test_orthogonal_init_is_flax_orthogonal_and_never_a_batched_lapack_call():
    w = nets.orthogonal(2.0)(jax.random.PRNGKey(3), (16, 8))
    np.testing.assert_allclose(w.T @ w, 4.0 * np.eye(8), atol=1e-4)
    wide = nets.orthogonal(1.0)(jax.random.PRNGKey(4), (8, 16))
    np.testing.assert_allclose(wide @ wide.T, np.eye(8), atol=1e-4)
    np.testing.assert_array_equal(w, nn.initializers.orthogonal(2.0)(jax.random.PRNGKey(3), (16, 8)))
    # Under (nested) vmap: the same matrices as one key at a time, and every QR the compiled
    # program calls is of a single matrix (a batched one can deadlock jaxlib 0.10's thread pool).
    keys = jax.random.split(jax.random.PRNGKey(5), 6).reshape(2, 3, 2)
    init = jax.vmap(jax.vmap(lambda k: nets.orthogonal(1.0)(k, (8, 4))))
    np.testing.assert_array_equal(jax.jit(init)(keys), [[nets.orthogonal(1.0)(k, (8, 4)) for k in row] for row in keys])
    hlo = jax.jit(init).lower(keys).compile().as_text()
    qr_operands = re.findall(r"= \((f32\[[\d,]*\])[^\n]*custom_call_target=\"lapack_sgeqrf_ffi\"", hlo)
    assert qr_operands and set(qr_operands) == {"f32[8,4]"}, qr_operands


def test_sampling_from_presampled_noise_is_sampling():
    from rlx import distributions

    key = jax.random.PRNGKey(3)
    logits = jax.random.normal(key, (5, 4))
    cat = distributions.categorical(logits)
    eps = distributions.noise(key, cat, (5,))
    assert eps.shape == (5, 4)
    np.testing.assert_array_equal(distributions.sample_from_noise(cat, eps), jax.random.categorical(key, logits))
    mean, log_std = jax.random.normal(key, (2, 5, 3))
    for dist in (distributions.gaussian(mean, log_std), distributions.tanh_gaussian(mean, log_std)):
        eps = distributions.noise(key, dist, (5,))
        assert eps.shape == (5, 3)
        np.testing.assert_allclose(distributions.sample_from_noise(dist, eps), dist.sample(seed=key), rtol=1e-6, atol=1e-6)
    # Gumbel-max draws follow the categorical's probabilities.
    probs = jax.nn.softmax(logits[0])
    draws = distributions.sample_from_noise(distributions.categorical(jnp.broadcast_to(logits[0], (20000, 4))),
                                            distributions.noise(key, cat, (20000,)))
    np.testing.assert_allclose(np.bincount(np.asarray(draws), minlength=4) / 20000, probs, atol=0.015)

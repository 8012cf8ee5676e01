"""flax networks: MLP torsos and the heads that turn them into distributions or values."""
from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from rlx import distributions


SMALL_OUTPUT = 2  # heads this narrow (a value, a Q, a mean, two logits) take the transposed-g path
# Products of at most SMALL_ROWS rows with a weight of at most SMALL_WIDTH × SMALL_WIDTH are
# written as a broadcast multiply and a sum, not a dot (see matmul). SMALL_MATMUL = False (read
# while tracing) turns that off, for A/Bs.
SMALL_ROWS = 16
SMALL_WIDTH = 64
SMALL_MATMUL = True


@jax.custom_vjp
def matmul(x, w):
    """``x @ w`` for x [..., n] and w [n, m], with a backward pass shaped for XLA:CPU's fast matmuls.

    Same numbers as ``x @ w`` up to float rounding. Why a custom VJP: autodiff writes the weight
    gradient ∂L/∂w = xᵀ g as a dot that contracts the batch axis of both operands, a layout
    XLA:CPU's YNN matmul fusion does not take, so it ran on the generic dot emitter (PPO's
    minibatch step: 10–20 µs per weight gradient instead of a few). Transposing x first, behind an
    ``optimization_barrier`` so XLA does not fold the transpose back into the dot, makes it an
    ordinary [n, B] @ [B, m] matmul. Measured: PPO CartPole 1 seed +4–6%, SAC Pendulum 256×256
    +5% updates/s. For a head of m ≤ SMALL_OUTPUT outputs it is cheaper still to transpose g
    ([B, m], tiny) and compute (gᵀ x)ᵀ: SAC's mean and log-σ heads took ~90 µs each per update
    as matrix-vector products on the generic emitter (256×256 SAC: ~4.8 → 4.3 ms per update).

    Outside autodiff (acting in a rollout, batched passes), a tiny product — at most SMALL_ROWS
    rows, a weight of at most SMALL_WIDTH × SMALL_WIDTH — is written Σ_n x[..., n, None] w[n]
    instead: a dot goes to the matmul library, which costs about a microsecond a call even for
    PPO's [4, 64] @ [64, 64] acting step (three per env step, 384 per iteration), while the
    multiply and sum stay in XLA's own fusions. Measured (experiments/bench/ab_small_matmul.py):
    PPO CartPole 1 seed, spread over 2 devices, +7%; on one device +1%; 8 seeds unchanged.
    """
    if SMALL_MATMUL and math.prod(x.shape[:-1]) <= SMALL_ROWS and max(w.shape) <= SMALL_WIDTH:
        return jnp.sum(x[..., :, None] * w, axis=-2)
    return x @ w


def _matmul_fwd(x, w):
    return x @ w, (x, w)


def _matmul_bwd(residuals, g):
    x, w = residuals
    x2, g2 = x.reshape(-1, x.shape[-1]), g.reshape(-1, g.shape[-1])
    if g2.shape[-1] <= SMALL_OUTPUT:  # a head of a few outputs: transpose g, not x
        # Both barriers matter: without the outer one XLA folds the final transpose into the dot
        # (x2ᵀ g2 again, on the generic emitter: ~39 µs for PPO's [64, 2] actor head per step).
        return g @ w.T, jax.lax.optimization_barrier(jax.lax.optimization_barrier(g2.T) @ x2).T
    x_t = jax.lax.optimization_barrier(x2.T)  # [n, B], materialised
    return g @ w.T, x_t @ g2


matmul.defvjp(_matmul_fwd, _matmul_bwd)


@jax.custom_vjp
def matmul_given_transpose(x, x_t, w):
    """``x @ w`` for x [..., n], given ``x_t`` = x flattened to [B, n] and transposed, [n, B].

    The weight gradient ∂L/∂w = x_t @ g then needs no transpose of x (see :func:`matmul`).
    ``x_t`` is a copy of x laid out for the backward pass, so it gets no gradient of its own;
    but it is not stop-gradiented either, so second-order derivatives see the backward pass
    depend on x through it, as they would through x.
    """
    return x @ w


def _matmul_given_transpose_fwd(x, x_t, w):
    return x @ w, (x_t, w)


def _matmul_given_transpose_bwd(residuals, g):
    x_t, w = residuals
    return g @ w.T, None, x_t @ g.reshape(-1, g.shape[-1])  # None: x_t gets no gradient


matmul_given_transpose.defvjp(_matmul_given_transpose_fwd, _matmul_given_transpose_bwd)

# An MLP whose first layer has at most SMALL_INPUT inputs and at least WIDE_LAYER outputs computes
# that layer's output transposed too (Dense(transposed=True)), for the second layer's weight
# gradient. Measured (experiments/bench/ab_first_layer_transposed.py, 256×256 Pendulum updates):
# TD3 ×1.10, SAC ×1.00; at PPO's 64×64 the transpose is cheap and the extra matmul kernel was
# not faster. TRANSPOSED_FIRST_LAYER = False (read while tracing) restores the transpose, for A/Bs.
SMALL_INPUT = 16
WIDE_LAYER = 128
TRANSPOSED_FIRST_LAYER = True


class Dense(nn.Dense):
    """flax's Dense (same parameter names and init) on :func:`matmul`; a given ``precision`` uses flax's dot.

    Two extras, both for the backward pass of an MLP's second layer (see :class:`MLP`):
    ``inputs_t`` (the inputs flattened to [B, n] and transposed) makes the weight gradient use it
    instead of transposing the inputs, and ``transposed=True`` also returns the output laid out
    that way, computed as Wᵀ xᵀ + b rather than transposed.
    """

    @nn.compact
    def __call__(self, inputs, inputs_t=None, *, transposed: bool = False):
        kernel = self.param("kernel", self.kernel_init, (jnp.shape(inputs)[-1], self.features), self.param_dtype)
        bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype) if self.use_bias else None
        inputs, kernel, bias = self.promote_dtype(inputs, kernel, bias, dtype=self.dtype)
        if self.precision is not None:  # an explicit matmul precision: flax's own dot, as asked
            y = jax.lax.dot_general(inputs, kernel, (((inputs.ndim - 1,), (0,)), ((), ())), precision=self.precision)
        elif inputs_t is None:
            y = matmul(inputs, kernel)
        else:
            y = matmul_given_transpose(inputs, inputs_t, kernel)
        if bias is not None:
            y = y + bias
        if not transposed:
            return y
        # Its own matmul, not yᵀ: with a narrow input, [m, n] @ [n, B] costs less than
        # transposing y. Without the barrier XLA folds it back into y (one matmul) read
        # transposed by the activation's fusion, which is the transpose again.
        kernel_t, x_t = jax.lax.optimization_barrier((kernel.T, inputs.reshape(-1, inputs.shape[-1]).T))
        y_t = kernel_t @ x_t
        if bias is not None:
            y_t = y_t + bias[:, None]
        return y, y_t


ACTIVATIONS = {"tanh": nn.tanh, "relu": nn.relu, "elu": nn.elu, "gelu": nn.gelu, "silu": nn.silu}


def orthogonal(scale: float = 1.0):
    """flax's orthogonal initializer (Saxe et al. 2014), never run as a batched LAPACK call.

    The same numbers as ``flax.linen.initializers.orthogonal(scale)``: the sign-fixed Q factor
    of a Gaussian matrix, so Haar-distributed. Why not use flax's directly: under ``vmap`` (a
    batch of seeds) its QR becomes one batched ``lapack_sgeqrf_ffi`` call, which jaxlib 0.10
    splits over the CPU thread pool and then waits on; when the other threads are busy with
    another program's work it waits for good (we saw vmapped PPO programs hang, intermittently,
    with a thread parked in ParallelBatchMap). A single matrix runs inline on the calling
    thread, so under ``vmap`` this maps over the batch one matrix at a time (``lax.map``).
    Why not Gram–Schmidt in jnp, which rlx used before: its column loop cost ~0.35 s of compile
    per layer shape (16 kernels), ~1.4 s of a PPO program's ~10 s; LAPACK's QR costs no
    kernels. At init only, so the sequential map costs nothing that matters.
    """
    flax_init = nn.initializers.orthogonal(scale)

    def init(key, shape, dtype=jnp.float32):
        if len(shape) < 2:
            raise ValueError(f"orthogonal init needs at least 2 dimensions, got shape {shape}")

        @jax.custom_batching.custom_vmap
        def draw(key):
            return flax_init(key, shape, dtype)

        @draw.def_vmap
        def _one_matrix_at_a_time(axis_size, in_batched, key):
            (batched,) = in_batched
            return (jax.lax.map(draw, key), True) if batched else (draw(key), False)

        return draw(key)

    return init


class MLP(nn.Module):
    """Dense layers with an activation after each; orthogonal(√2) init as in PPO practice."""

    hidden: Sequence[int]
    activation: str = "tanh"
    obs_ndim: int = 1  # trailing dims that make one observation (3 for images): flattened

    @nn.compact
    def __call__(self, x):
        act = ACTIVATIONS[self.activation]
        x = x.reshape(x.shape[: x.ndim - self.obs_ndim] + (-1,))
        x_t = None
        for i, width in enumerate(self.hidden):
            layer = Dense(width, kernel_init=orthogonal(np.sqrt(2)), bias_init=nn.initializers.zeros)
            if (i == 0 and len(self.hidden) > 1 and x.shape[-1] <= SMALL_INPUT and width >= WIDE_LAYER
                    and TRANSPOSED_FIRST_LAYER):
                y, y_t = layer(x, transposed=True)
                x, x_t = act(y), act(y_t)
            else:
                x, x_t = act(layer(x, x_t)), None
        return x


class ValueNet(nn.Module):
    """State value V(s): MLP → scalar."""

    hidden: Sequence[int]
    activation: str = "tanh"
    obs_ndim: int = 1

    @nn.compact
    def __call__(self, obs):
        x = MLP(self.hidden, self.activation, self.obs_ndim)(obs)
        return Dense(1, kernel_init=orthogonal(1.0), bias_init=nn.initializers.zeros)(x)[..., 0]


class CategoricalPolicy(nn.Module):
    """π(a|s) = Categorical(logits(s)); small (0.01) output init keeps the first policy near uniform."""

    num_actions: int
    hidden: Sequence[int]
    activation: str = "tanh"
    obs_ndim: int = 1

    @nn.compact
    def __call__(self, obs):
        x = MLP(self.hidden, self.activation, self.obs_ndim)(obs)
        logits = Dense(self.num_actions, kernel_init=orthogonal(0.01), bias_init=nn.initializers.zeros)(x)
        return distributions.categorical(logits)


class GaussianPolicy(nn.Module):
    """π(a|s) = N(μ(s), diag σ²) with a state-independent, learned log σ (PPO's usual choice)."""

    action_dim: int
    hidden: Sequence[int]
    activation: str = "tanh"
    log_std_init: float = 0.0
    obs_ndim: int = 1

    @nn.compact
    def __call__(self, obs):
        x = MLP(self.hidden, self.activation, self.obs_ndim)(obs)
        mean = Dense(self.action_dim, kernel_init=orthogonal(0.01), bias_init=nn.initializers.zeros)(x)
        log_std = self.param("log_std", nn.initializers.constant(self.log_std_init), (self.action_dim,))
        return distributions.gaussian(mean, jnp.broadcast_to(log_std, mean.shape))


class TanhGaussianPolicy(nn.Module):
    """π(a|s) = tanh(N(μ(s), diag σ(s)²)), with log σ(s) squashed into [log_std_min, log_std_max]."""

    action_dim: int
    hidden: Sequence[int]
    activation: str = "relu"
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    obs_ndim: int = 1

    @nn.compact
    def __call__(self, obs):
        x = MLP(self.hidden, self.activation, self.obs_ndim)(obs)
        mean = Dense(self.action_dim)(x)
        raw = Dense(self.action_dim)(x)
        log_std = self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (jnp.tanh(raw) + 1.0)
        return distributions.tanh_gaussian(mean, log_std)

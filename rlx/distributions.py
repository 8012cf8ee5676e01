"""The three action distributions rlx uses, kept behind one small module.

distrax depends on tfp-nightly; if that ever breaks, only this file changes.
"""
from __future__ import annotations

import distrax
import jax
import jax.numpy as jnp


def categorical(logits):
    """Categorical over the last axis of ``logits`` [..., A]."""
    return distrax.Categorical(logits=logits)


def gaussian(mean, log_std):
    """Diagonal Gaussian, event shape [A]; ``log_prob``/``entropy`` sum over action dims."""
    return distrax.MultivariateNormalDiag(mean, jnp.exp(log_std))


def tanh_gaussian(mean, log_std):
    """Diagonal Gaussian squashed by tanh into (−1, 1)^A (Haarnoja et al. 2018, App. C).

    ``log_prob`` includes the tanh log-det-Jacobian, computed stably by distrax.
    """
    base = distrax.MultivariateNormalDiag(mean, jnp.exp(log_std))
    return distrax.Transformed(base, distrax.Block(distrax.Tanh(), ndims=1))


def sample(dist, key):
    """``dist.sample(seed=key)``; for a categorical, without distrax's per-draw validity checks.

    distrax's categorical sampler also computes the probabilities to test them for NaN on every
    draw: four extra kernels in the innermost loop of an on-policy rollout. The draw itself is
    the same ``jax.random.categorical`` (Gumbel-max on the normalised logits).
    """
    if isinstance(dist, distrax.Categorical):
        return jax.random.categorical(key, dist.logits, axis=-1)
    return dist.sample(seed=key)


def noise(key, dist_like, shape):
    """Standard noise for :func:`sample_from_noise`, drawn for a batch of ``shape`` draws at once.

    ``dist_like`` is a distribution of the kind to be sampled (only its type and event size are
    read). Gumbel(0, 1) per category for a categorical, N(0, 1) per action dimension otherwise.
    A rollout draws the noise of all its steps in one call before its loop.
    """
    if isinstance(dist_like, distrax.Categorical):
        return jax.random.gumbel(key, tuple(shape) + dist_like.logits.shape[-1:])
    return jax.random.normal(key, tuple(shape) + dist_like.event_shape)


def sample_from_noise(dist, eps):
    """A draw of ``dist`` from :func:`noise`: the same distribution as ``dist.sample``.

    Categorical: argmax(logits + g), the Gumbel-max trick (what ``jax.random.categorical``
    does). Gaussian: μ + σ·ε. Tanh-Gaussian: tanh(μ + σ·ε).
    """
    if isinstance(dist, distrax.Categorical):
        return jnp.argmax(dist.logits + eps, axis=-1)
    if isinstance(dist, distrax.MultivariateNormalDiag):  # itself a distrax.Transformed
        return dist.loc + dist.scale_diag * eps
    return dist.bijector.forward(sample_from_noise(dist.distribution, eps))


def mode(dist):
    """Deterministic action: argmax for a categorical, the (squashed) mean otherwise."""
    if isinstance(dist, distrax.Transformed):
        return dist.bijector.forward(dist.distribution.mode())
    return dist.mode()

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


def mode(dist):
    """Deterministic action: argmax for a categorical, the (squashed) mean otherwise."""
    if isinstance(dist, distrax.Transformed):
        return dist.bijector.forward(dist.distribution.mode())
    return dist.mode()

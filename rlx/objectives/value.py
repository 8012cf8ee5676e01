"""Value and critic losses.

Pure ``jnp`` functions of arrays.  Regression losses take ``(pred, target)``; the implicit
value losses of offline RL act on ``u = Q̄(s, a) − V(s)`` (Q̄: target critic, usually the
minimum over twin critics, held fixed by the caller with ``stop_gradient``).  Unless said
otherwise each returns the mean over all elements, a scalar; the conjugates ``*_conjugate``
are elementwise.  Stop-gradients on targets are the caller's job.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from rlx.objectives.base import Array


def squared_error(pred: Array, target: Array) -> Array:
    """Mean squared error, unscaled.

        L = mean( (pred − target)² )

    PPO's value loss is 0.5·squared_error (or :func:`clipped_value_loss`); SAC/IQL critics
    use it as is.  Scale it at the call site.

    Args:
      pred: [...] predictions.
      target: [...] targets, same shape (or broadcastable).

    Returns:
      [] loss.
    """
    return jnp.mean(jnp.square(pred - target))


def huber(pred: Array, target: Array, *, delta: Array | float = 1.0) -> Array:
    """Mean Huber loss (quadratic within δ, linear outside).

        h(x) = 0.5·x²            if |x| ≤ δ
               δ·(|x| − 0.5·δ)   otherwise,       x = pred − target
        L = mean( h(x) )

    Huber 1964; used for XQL's critic.  Elementwise part from ``optax.huber_loss``.

    Args:
      pred: [...] predictions.
      target: [...] targets.
      delta: [] threshold δ > 0.

    Returns:
      [] loss.
    """
    return jnp.mean(optax.huber_loss(pred, target, delta=delta))


def clipped_value_loss(
    value: Array, old_value: Array, target: Array, *, epsilon: Array | float = 0.2
) -> Array:
    """PPO's clipped value loss.

        v_clip = v_old + clip(v − v_old, −ε, ε)
        L = 0.5·mean( max( (v − y)², (v_clip − y)² ) )

    The pessimistic max stops the value function moving more than ε from the rollout
    values where that would help.  As in the PPO reference implementation (baselines'
    ppo2) and PureJaxRL.

    Args:
      value: [B] current value predictions V_θ(s).
      old_value: [B] values recorded at rollout time.
      target: [B] return targets y (e.g. GAE advantages + old values).
      epsilon: [] clip range ε.

    Returns:
      [] loss.
    """
    clipped = old_value + jnp.clip(value - old_value, -epsilon, epsilon)
    return 0.5 * jnp.mean(jnp.maximum(jnp.square(value - target), jnp.square(clipped - target)))


def expectile(u: Array, *, tau: Array | float = 0.7) -> Array:
    """Expectile regression loss of IQL.

        L = mean( |τ − 1[u < 0]|·u² ),     u = Q̄(s, a) − V(s)

    Minimising over V gives the τ-expectile of Q̄ under the data's actions; τ → 1
    approaches the in-support maximum.  Kostrikov et al. 2021, "Offline Reinforcement
    Learning with Implicit Q-Learning", τ = 0.7 for locomotion.

    Args:
      u: [...] differences Q̄ − V.
      tau: [] expectile in (0, 1).

    Returns:
      [] loss.
    """
    weight = jnp.where(u < 0, 1.0 - tau, tau)
    return jnp.mean(weight * jnp.square(u))


def gumbel(u: Array, *, temperature: Array | float = 1.0, clip: Array | float = 7.0) -> Array:
    """Gumbel regression loss of XQL, in a numerically stable, batch-rescaled form.

    The loss of Garg et al. is mean(e^z − z − 1), z = u/T, u = Q̄ − V; its minimiser in V
    is the soft maximum V = T·log E[exp(Q̄/T)].  This function computes

        z = min(u / T, clip)                                  (upper clip only)
        m = stop_gradient( max(max_i z_i, −1) )
        L = mean( e^(z − m) − e^(−m)·(z + 1) )  =  e^(−m) · mean( e^z − z − 1 )

    i.e. the original loss times the positive, gradient-free factor e^(−m).  Hence:
      * the gradient has the same sign and the same fixed point as the original
        (∂L/∂z = e^(−m)·(e^z − 1)), only its scale is normalised by the batch maximum;
      * e^(z − m) ≤ 1 and e^(−m) ≤ e, so value and gradient are finite for any finite u:
        very negative u contribute a linear term (bounded slope e/T), large positive u are
        clipped at z = ``clip`` (their gradient is then 0, as in XQL);
      * L ≥ 0 (up to rounding), 0 iff all z = 0.
    The floor −1 on m stops e^(−m) overflowing when the whole batch is very negative.

    Garg et al. 2023, "Extreme Q-Learning: MaxEnt RL without Entropy" (ICLR), which uses
    the same max-subtraction and clip = 7.  Also the reverse-KL case of f-DVL
    (use as ``dual_value_loss(..., conjugate=gumbel)``).

    Args:
      u: [...] differences Q̄ − V; the max runs over all elements.
      temperature: [] T > 0 (1–5 in XQL, depending on the dataset).
      clip: [] upper clip on z.

    Returns:
      [] loss.
    """
    z = jnp.minimum(u / temperature, clip)
    m = jax.lax.stop_gradient(jnp.maximum(jnp.max(z), -1.0))
    return jnp.mean(jnp.exp(z - m) - jnp.exp(-m) * (z + 1.0))


def chi2_conjugate(x: Array) -> Array:
    """Clamped Pearson-χ² conjugate used by f-DVL, elementwise.

        f*(x) = max( x + x²/4, 0 )

    For x ≥ 0 this is the convex conjugate x + x²/4 of f(t) = (t − 1)².  The clamp zeroes
    the region −4 < x < 0 where x + x²/4 is negative (unclamped, its minimum at x = −2
    would pull V up to Q̄ + 2); below x = −4 the expression is positive again, so it
    pushes an overestimated V back down.  Gradient 1 + x/2 where x + x²/4 > 0, else 0.
    Sikchi et al. 2024, "Dual RL: Unification and New Methods for Reinforcement and
    Imitation Learning" (ICLR).

    Args:
      x: [...] values (u = Q̄ − V in f-DVL).

    Returns:
      [...] same shape.
    """
    return jnp.maximum(x + 0.25 * jnp.square(x), 0.0)


def tv_conjugate(x: Array) -> Array:
    """Total-variation conjugate used by f-DVL, elementwise: f*(x) = max(x, 0).

    Sikchi et al. 2024, "Dual RL" (ICLR).

    Args:
      x: [...] values.

    Returns:
      [...] same shape.
    """
    return jnp.maximum(x, 0.0)


def dual_value_loss(
    v: Array,
    u: Array,
    *,
    lam: Array | float = 0.5,
    conjugate: Callable[[Array], Array] = chi2_conjugate,
) -> Array:
    """f-DVL value loss (dual V-learning).

        L = (1 − λ)·mean( V(s) ) + λ·mean( f*(u) ),     u = Q̄(s, a) − V(s)

    Pushes V down everywhere and up where Q̄ exceeds it; at the optimum
    λ·E[f*'(u)] = 1 − λ.  ``conjugate`` is any callable of u: an elementwise conjugate
    (:func:`chi2_conjugate`, :func:`tv_conjugate`) or an already mean-reduced loss; for
    reverse KL pass :func:`gumbel` (or ``functools.partial(gumbel, temperature=T)``).
    ``u`` must be computed from the same V as ``v`` so gradients flow through both terms.

    Sikchi et al. 2024, "Dual RL: Unification and New Methods for Reinforcement and
    Imitation Learning" (ICLR).

    Args:
      v: [B] values V(s).
      u: [B] differences Q̄(s, a) − V(s).
      lam: [] mixing weight λ in (0, 1).
      conjugate: callable, u ↦ f*(u) (elementwise or scalar).

    Returns:
      [] loss.
    """
    return (1.0 - lam) * jnp.mean(v) + lam * jnp.mean(conjugate(u))

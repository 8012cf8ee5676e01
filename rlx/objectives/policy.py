"""Policy surrogates and the drift functions behind them.

Every surrogate here is a mirror-learning objective (Kuba et al. 2022),

    L(θ) = −mean_b( r_b·A_b − D(r_b, A_b, ...) ),      r = π_θ(a|s) / π_old(a|s),

for some *drift* D ≥ 0 that is zero, with zero gradient, at r = 1.  The drift is what
keeps the new policy near the old one: PPO-clip, DPO, LPO and TA-LPO differ only in D.
KL-regularised surrogates (fixed/adaptive KL penalty, MDPO) use a per-sample KL estimate
as the drift.

Drifts are elementwise functions of arrays of shape [B] and return [B]; surrogates take a
:class:`~rlx.objectives.base.PolicyBatch` and keyword hyperparameters and return a scalar
loss to *minimise*.  Everything is plain ``jnp``: no state, no modules.
"""
from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp

from rlx.objectives.base import Array, PolicyBatch, kl_new_old, kl_old_new

# Offset inside the LPO/TA-LPO ReLU.  The learned net is exactly 0 at r = 1, so the ReLU
# argument there is −LPO_OFFSET < 0: the drift is 0 with zero gradient in a whole
# neighbourhood of r = 1, whatever the weights.
LPO_OFFSET = 1e-4
LPO_FEATURES = 8
TA_LPO_FEATURES = 3 * LPO_FEATURES


# --------------------------------------------------------------------------------------
# The mirror-learning form
# --------------------------------------------------------------------------------------


def mirror_learning_loss(ratio: Array, advantage: Array, drift: Array) -> Array:
    """Mirror-learning surrogate loss from a precomputed drift.

        L = −mean_b( r_b·A_b − D_b )

    Kuba et al. 2022, "Mirror Learning: A Unifying Framework of Policy Optimisation".

    Args:
      ratio: [B] probability ratios π_θ/π_old.
      advantage: [B] advantage estimates.
      drift: [B] drift values D(r, A, ...) ≥ 0.

    Returns:
      [] scalar loss to minimise.
    """
    return -jnp.mean(ratio * advantage - drift)


# --------------------------------------------------------------------------------------
# Drifts
# --------------------------------------------------------------------------------------


def ppo_drift(ratio: Array, advantage: Array, *, epsilon: Array | float = 0.2) -> Array:
    """PPO-clip written as a drift.

        D(r, A) = ReLU( (r − clip(r, 1−ε, 1+ε))·A )

    Since min(r·A, clip(r)·A) = r·A − ReLU((r − clip(r))·A), the mirror-learning loss with
    this drift equals PPO's clipped surrogate (Schulman et al. 2017, "Proximal Policy
    Optimization Algorithms").  D is 0 on the whole trust region [1−ε, 1+ε].

    Args:
      ratio: [B] probability ratios.
      advantage: [B] advantages.
      epsilon: [] clip range ε > 0.

    Returns:
      [B] drift, ≥ 0.
    """
    return jax.nn.relu((ratio - jnp.clip(ratio, 1.0 - epsilon, 1.0 + epsilon)) * advantage)


def dpo_drift(
    ratio: Array,
    advantage: Array,
    *,
    alpha: Array | float = 2.0,
    beta: Array | float = 0.6,
) -> Array:
    """Drift of Discovered Policy Optimisation (DPO), the closed form distilled from LPO.

        A ≥ 0:  D = ReLU( (r−1)·A − α·tanh((r−1)·A / α) )
        A < 0:  D = ReLU( log(r)·A − β·tanh(log(r)·A / β) )

    x − c·tanh(x/c) has the sign of x and is O(x³) near 0, so D is 0 with zero gradient at
    r = 1, grows smoothly, and only penalises moving r in the direction the advantage
    rewards (r > 1 for A ≥ 0, r < 1 for A < 0).

    Lu et al. 2022, "Discovered Policy Optimisation" (NeurIPS), with α = 2, β = 0.6.

    Args:
      ratio: [B] probability ratios, > 0.
      advantage: [B] advantages.
      alpha: [] scale of the positive-advantage branch.
      beta: [] scale of the negative-advantage branch.

    Returns:
      [B] drift, ≥ 0.
    """
    pos = (ratio - 1.0) * advantage
    neg = jnp.log(ratio) * advantage
    pos_drift = jax.nn.relu(pos - alpha * jnp.tanh(pos / alpha))
    neg_drift = jax.nn.relu(neg - beta * jnp.tanh(neg / beta))
    return jnp.where(advantage >= 0, pos_drift, neg_drift)


def lpo_features(ratio: Array, advantage: Array) -> Array:
    """The 8 LPO input features, every one exactly 0 at r = 1.

        x = [log r, (log r)², r−1, (r−1)², A·log r, A·(log r)², A·(r−1), A·(r−1)²]

    Args:
      ratio: [B] probability ratios, > 0.
      advantage: [B] advantages.

    Returns:
      [B, 8] features.
    """
    log_r = jnp.log(ratio)
    r_m1 = ratio - 1.0
    base = jnp.stack([log_r, log_r**2, r_m1, r_m1**2], axis=-1)
    return jnp.concatenate([base, base * advantage[..., None]], axis=-1)


def _check_params(params: dict, n_in: int, where: str) -> None:
    # Shapes are static, so this fails at trace time, before anything compiles.
    if not isinstance(params, Mapping) or set(params) != {"w1", "w2"}:
        keys = sorted(params) if isinstance(params, Mapping) else type(params).__name__
        raise ValueError(f"{where}: params must be a dict with keys 'w1' and 'w2', got {keys}")
    w1, w2 = jnp.shape(params["w1"]), jnp.shape(params["w2"])
    if len(w1) != 2 or w1[0] != n_in or len(w2) != 2 or w2 != (w1[1], 1):
        raise ValueError(
            f"{where}: params must have shapes w1 ({n_in}, H) and w2 (H, 1), "
            f"got w1 {w1} and w2 {w2}"
        )


def _drift_net(params: dict, x: Array) -> Array:
    """One hidden tanh layer, no biases: [..., F] → [...]."""
    return (jnp.tanh(x @ params["w1"]) @ params["w2"])[..., 0]


def lpo_drift(
    ratio: Array,
    advantage: Array,
    *,
    params: dict,
    ppo_weight: Array | float = 0.0,
    epsilon: Array | float = 0.2,
) -> Array:
    """Learned Policy Optimisation (LPO) drift: a small bias-free MLP of (r, A).

        x = lpo_features(r, A)                                    # [B, 8]
        net(x) = tanh(x·W1)·W2                                     # W1 [8, H], W2 [H, 1]
        D = ReLU( w_ppo·D_ppo(r, A; ε) + net(x) − 1e-4 )

    With no biases and every feature 0 at r = 1, net = 0 there, so the ReLU argument is
    −1e-4 and D = 0 with zero gradient near r = 1 for *any* weights.  ``ppo_weight = 1``
    is the PPO-initialised LPO variant (the net learns a correction to PPO's drift); it
    is a float so that it can be vmapped or evolved like the weights.

    Lu et al. 2022, "Discovered Policy Optimisation" (NeurIPS): the drift is meta-learned
    with evolution strategies on final return.

    Args:
      ratio: [B] probability ratios, > 0.
      advantage: [B] advantages.
      params: {"w1": [8, H], "w2": [H, 1]}, e.g. from :func:`lpo_init`.
      ppo_weight: [] weight of the PPO drift added inside the ReLU.
      epsilon: [] clip range of that PPO drift.

    Returns:
      [B] drift, ≥ 0.
    """
    _check_params(params, LPO_FEATURES, "lpo_drift")
    net = _drift_net(params, lpo_features(ratio, advantage))
    base = ppo_weight * ppo_drift(ratio, advantage, epsilon=epsilon)
    return jax.nn.relu(base + net - LPO_OFFSET)


def ta_lpo_features(ratio: Array, advantage: Array, progress: Array, horizon: Array) -> Array:
    """The 24 TA-LPO inputs: LPO features f, f·(n/N) and f·log N.

    Args:
      ratio: [B] probability ratios, > 0.
      advantage: [B] advantages.
      progress: [] or [B] training progress n/N in [0, 1].
      horizon: [] or [B] total number of iterations N ≥ 1 (values below 1 are treated as 1).

    Returns:
      [B, 24] features, every one exactly 0 at r = 1.
    """
    f = lpo_features(ratio, advantage)
    progress = jnp.broadcast_to(jnp.asarray(progress, f.dtype), ratio.shape)[..., None]
    log_horizon = jnp.log(jnp.maximum(jnp.asarray(horizon, f.dtype), 1.0))
    log_horizon = jnp.broadcast_to(log_horizon, ratio.shape)[..., None]
    return jnp.concatenate([f, f * progress, f * log_horizon], axis=-1)


def ta_lpo_drift(
    ratio: Array,
    advantage: Array,
    progress: Array,
    horizon: Array,
    *,
    params: dict,
    ppo_weight: Array | float = 0.0,
    epsilon: Array | float = 0.2,
) -> Array:
    """Temporally-aware LPO drift: an LPO drift that also sees training progress and horizon.

        f = lpo_features(r, A)                                     # [B, 8]
        x = [f, f·(n/N), f·log N]                                  # [B, 24]
        D = ReLU( w_ppo·D_ppo(r, A; ε) + tanh(x·W1)·W2 − 1e-4 )    # W1 [24, H], W2 [H, 1]

    Jackson et al. 2024, "Discovering Temporally-Aware Reinforcement Learning Algorithms"
    (ICLR): giving the learned drift n/N and log N lets ES discover schedules (e.g. loose
    early, tight late) and makes the drift transfer across training horizons.

    Design choice (rlx): progress and log N enter *multiplicatively*, as f·(n/N) and
    f·log N, rather than as two extra raw inputs.  Every input is then 0 at r = 1, so the
    net is 0 there and D = 0 with zero gradient at r = 1 for any weights, exactly as in
    LPO.  Raw time inputs would make net(r=1) ≠ 0 and break that guarantee.  This loses
    nothing essential: the hidden pre-activation is f·(W_a + (n/N)·W_b + log N·W_c), i.e.
    a first layer whose weights are an affine function of the temporal inputs.

    Args:
      ratio: [B] probability ratios, > 0.
      advantage: [B] advantages.
      progress: [] or [B] training progress n/N in [0, 1].
      horizon: [] or [B] total number of training iterations N.
      params: {"w1": [24, H], "w2": [H, 1]}, e.g. from :func:`ta_lpo_init`.
      ppo_weight: [] weight of the PPO drift added inside the ReLU (1 = PPO-initialised).
      epsilon: [] clip range of that PPO drift.

    Returns:
      [B] drift, ≥ 0.
    """
    _check_params(params, TA_LPO_FEATURES, "ta_lpo_drift")
    x = ta_lpo_features(ratio, advantage, progress, horizon)
    net = _drift_net(params, x)
    base = ppo_weight * ppo_drift(ratio, advantage, epsilon=epsilon)
    return jax.nn.relu(base + net - LPO_OFFSET)


def _drift_net_init(key: Array, n_in: int, hidden: int, scale: float) -> dict:
    k1, k2 = jax.random.split(key)
    w1 = jax.random.normal(k1, (n_in, hidden), jnp.float32) / jnp.sqrt(n_in)
    w2 = scale * jax.random.normal(k2, (hidden, 1), jnp.float32) / jnp.sqrt(hidden)
    return {"w1": w1, "w2": w2}


def lpo_init(key: Array, *, hidden: int = 128, scale: float = 1.0) -> dict:
    """Random weights for :func:`lpo_drift`: {"w1": [8, hidden], "w2": [hidden, 1]}.

    W1 ~ N(0, 1/8) and W2 ~ scale·N(0, 1/hidden) (LeCun-normal, the variance a flax Dense
    layer would use).  For normalised advantages and r within ~0.3 of 1 the features are
    O(0.1–1), so the hidden tanh units start in their near-linear range and, with
    scale = 1, the random drift has the same order as the r·A term it regularises:
    neither negligible nor dominant, a reasonable centre for an ES search.  Use a small
    ``scale`` (e.g. 0.01) with ``ppo_weight = 1`` to start a search from (almost) PPO.

    Args:
      key: PRNG key.
      hidden: number of hidden tanh units (128 in LPO).
      scale: multiplier on the output layer.

    Returns:
      dict of float32 weights.
    """
    return _drift_net_init(key, LPO_FEATURES, hidden, scale)


def ta_lpo_init(key: Array, *, hidden: int = 128, scale: float = 1.0) -> dict:
    """Random weights for :func:`ta_lpo_drift`: {"w1": [24, hidden], "w2": [hidden, 1]}.

    Same scheme as :func:`lpo_init` (LeCun-normal, output layer times ``scale``).
    """
    return _drift_net_init(key, TA_LPO_FEATURES, hidden, scale)


# --------------------------------------------------------------------------------------
# Surrogates: loss(batch: PolicyBatch, **hparams) -> scalar
# --------------------------------------------------------------------------------------


def ppo_clip(batch: PolicyBatch, *, epsilon: Array | float = 0.2) -> Array:
    """PPO's clipped surrogate.

        L = −mean( min(r·A, clip(r, 1−ε, 1+ε)·A) )

    Schulman et al. 2017, "Proximal Policy Optimization Algorithms", eq. 7.  Equal to
    ``mirror_learning_loss(r, A, ppo_drift(r, A, epsilon=ε))``.

    Args:
      batch: log_ratio [B], advantage [B]; progress/horizon unused.
      epsilon: [] clip range.

    Returns:
      [] loss.
    """
    r, a = batch.ratio, batch.advantage
    return -jnp.mean(jnp.minimum(r * a, jnp.clip(r, 1.0 - epsilon, 1.0 + epsilon) * a))


def kl_penalty(batch: PolicyBatch, *, beta: Array | float = 1.0) -> Array:
    """Surrogate with a fixed KL(π_old‖π_θ) penalty.

        L = −mean( r·A − β·k3(log r) ),     k3 = (r − 1) − log r  (see ``kl_old_new``)

    Schulman et al. 2017, "Proximal Policy Optimization Algorithms", §4 (fixed β).

    Args:
      batch: log_ratio [B], advantage [B]; progress/horizon unused.
      beta: [] penalty coefficient.

    Returns:
      [] loss.
    """
    drift = beta * kl_old_new(batch.log_ratio)
    return mirror_learning_loss(batch.ratio, batch.advantage, drift)


def kl_penalty_adaptive(
    batch: PolicyBatch,
    *,
    beta: Array | float = 1.0,
    kl_target: Array | float = 0.01,
) -> Array:
    """Adaptive-KL surrogate: the :func:`kl_penalty` loss, with β adapted between iterations.

        L = −mean( r·A − β·k3(log r) )

    ``kl_target`` does not enter the loss; it is here so the hparams dict of this objective
    is complete.  β is updated once per iteration by :func:`kl_adapt` (registered as this
    objective's ``adapt``), Schulman et al. 2017, §4.

    Args:
      batch: log_ratio [B], advantage [B].
      beta: [] current penalty coefficient (the adapted value).
      kl_target: [] target KL d_targ.

    Returns:
      [] loss.
    """
    del kl_target
    return kl_penalty(batch, beta=beta)


def kl_adapt_init(hparams: dict) -> dict:
    """Adapted state of the adaptive-KL objective: {"beta": hparams["beta"]}."""
    return {"beta": jnp.asarray(hparams["beta"], jnp.float32)}


def kl_adapt(adapted: dict, hparams: dict, mean_kl: Array) -> dict:
    """Adaptive-KL coefficient update (Schulman et al. 2017, §4).

        β ← 2β   if KL > 1.5·d_targ
        β ← β/2  if KL < d_targ/1.5
        β        otherwise

    Written with ``jnp.where``: jittable and vmappable.

    Args:
      adapted: {"beta": []} current coefficient.
      hparams: must contain "kl_target" [].
      mean_kl: [] batch-mean KL(π_old‖π_θ) measured after the iteration's update.

    Returns:
      {"beta": []} new coefficient.
    """
    beta = adapted["beta"]
    target = hparams["kl_target"]
    beta = jnp.where(
        mean_kl > 1.5 * target, beta * 2.0, jnp.where(mean_kl < target / 1.5, beta / 2.0, beta)
    )
    return {"beta": beta}


def mdpo_temperature(progress: Array, *, min_temperature: Array | float = 0.05) -> Array:
    """MDPO step-size t_k = max(1 − k/K, t_min); the KL weight is 1/t_k."""
    return jnp.maximum(1.0 - progress, min_temperature)


def mdpo(batch: PolicyBatch, *, min_temperature: Array | float = 0.05) -> Array:
    """On-policy Mirror Descent Policy Optimisation.

        L = −mean( r·A − (1/t)·KL̂(π_θ‖π_old) ),   t = max(1 − n/N, t_min)

    with the per-sample estimate KL̂ = r·log r − (r − 1) (``kl_new_old``).  The annealed
    step size t_k = 1 − k/K makes the KL weight 1/t_k grow from 1 to 1/t_min over training;
    no clipping.  ``min_temperature`` keeps the weight finite at the end of training.

    Tomar et al. 2020, "Mirror Descent Policy Optimization" (ICLR 2022), on-policy MDPO.

    Args:
      batch: log_ratio [B], advantage [B], progress [].
      min_temperature: [] lower bound t_min on the step size.

    Returns:
      [] loss.
    """
    t = mdpo_temperature(batch.progress, min_temperature=min_temperature)
    return mirror_learning_loss(batch.ratio, batch.advantage, kl_new_old(batch.log_ratio) / t)


def dpo(batch: PolicyBatch, *, alpha: Array | float = 2.0, beta: Array | float = 0.6) -> Array:
    """Discovered Policy Optimisation: mirror-learning loss with :func:`dpo_drift`.

        L = −mean( r·A − D_dpo(r, A; α, β) )

    Lu et al. 2022, "Discovered Policy Optimisation" (NeurIPS).

    Args:
      batch: log_ratio [B], advantage [B].
      alpha: [] positive-advantage scale.
      beta: [] negative-advantage scale.

    Returns:
      [] loss.
    """
    r, a = batch.ratio, batch.advantage
    return mirror_learning_loss(r, a, dpo_drift(r, a, alpha=alpha, beta=beta))


def lpo(
    batch: PolicyBatch,
    *,
    params: dict,
    ppo_weight: Array | float = 0.0,
    epsilon: Array | float = 0.2,
) -> Array:
    """Learned Policy Optimisation: mirror-learning loss with a learned drift.

        L = −mean( r·A − D_lpo(r, A; W) )          (see :func:`lpo_drift`)

    Lu et al. 2022, "Discovered Policy Optimisation" (NeurIPS), LPO.

    Args:
      batch: log_ratio [B], advantage [B].
      params: {"w1": [8, H], "w2": [H, 1]} drift-network weights (no default; the registry
        entry ``get("lpo").init(key)`` draws them with :func:`lpo_init`).
      ppo_weight: [] 1 for the PPO-initialised variant, 0 for plain LPO.
      epsilon: [] clip range of the PPO part.

    Returns:
      [] loss.
    """
    r, a = batch.ratio, batch.advantage
    drift = lpo_drift(r, a, params=params, ppo_weight=ppo_weight, epsilon=epsilon)
    return mirror_learning_loss(r, a, drift)


def ta_lpo(
    batch: PolicyBatch,
    *,
    params: dict,
    ppo_weight: Array | float = 0.0,
    epsilon: Array | float = 0.2,
) -> Array:
    """Temporally-aware LPO: mirror-learning loss with :func:`ta_lpo_drift`.

        L = −mean( r·A − D_ta(r, A, n/N, N; W) )

    Jackson et al. 2024, "Discovering Temporally-Aware Reinforcement Learning Algorithms".

    Args:
      batch: log_ratio [B], advantage [B], progress [] (n/N), horizon [] (N).
      params: {"w1": [24, H], "w2": [H, 1]} (no default; see :func:`ta_lpo_init`).
      ppo_weight: [] 1 for the PPO-initialised variant.
      epsilon: [] clip range of the PPO part.

    Returns:
      [] loss.
    """
    r, a = batch.ratio, batch.advantage
    drift = ta_lpo_drift(
        r, a, batch.progress, batch.horizon,
        params=params, ppo_weight=ppo_weight, epsilon=epsilon,
    )
    return mirror_learning_loss(r, a, drift)

"""Objectives: pure loss functions you can call on arrays, with or without an agent.

A policy surrogate is ``loss(batch: PolicyBatch, **hparams) -> scalar`` (a loss to
minimise).  ``batch`` holds flat arrays (log-ratio and advantage [B], progress and horizon
[]); hyperparameters are keyword arguments, so they can be vmapped, differentiated or
evolved.  Most surrogates are mirror-learning objectives −mean(r·A − drift); the drifts are
exported too.  Value losses (``squared_error``, ``huber``, ``expectile``, ``gumbel``,
``dual_value_loss``...) are plain functions of arrays.

    >>> import jax.numpy as jnp
    >>> from rlx import objectives
    >>> batch = objectives.PolicyBatch(
    ...     log_ratio=jnp.log(jnp.array([1.5, 0.5])), advantage=jnp.array([2.0, -1.0]),
    ...     progress=jnp.array(0.0), horizon=jnp.array(100.0))
    >>> round(float(objectives.ppo_clip(batch, epsilon=0.2)), 4)  # −mean(2.4, −0.8)
    -0.8

The registry maps names to :class:`Surrogate` entries (loss, default-hparam init, and for
adaptive KL the between-iteration update).  ``get(name)`` looks one up, ``names()`` lists
them, ``register(name, fn)`` adds your own: any ``fn(batch, *, hp=default, ...)`` works,
its keyword defaults become its hparams.
"""
from __future__ import annotations

from typing import Callable

import jax.numpy as jnp

from rlx.objectives.base import (
    PolicyBatch,
    Surrogate,
    as_surrogate,
    keyword_defaults,
    kl_new_old,
    kl_old_new,
)
from rlx.objectives.policy import (
    dpo,
    dpo_drift,
    kl_adapt,
    kl_adapt_init,
    kl_penalty,
    kl_penalty_adaptive,
    lpo,
    lpo_drift,
    lpo_features,
    lpo_init,
    mdpo,
    mdpo_temperature,
    mirror_learning_loss,
    ppo_clip,
    ppo_drift,
    ta_lpo,
    ta_lpo_drift,
    ta_lpo_features,
    ta_lpo_init,
)
from rlx.objectives.offpolicy import mdpo_actor, sac_actor
from rlx.objectives.offline import awr_actor, awr_weights, cql_penalty, td3bc_actor
from rlx.objectives.value import (
    chi2_conjugate,
    clipped_value_loss,
    dual_value_loss,
    expectile,
    gumbel,
    huber,
    squared_error,
    tv_conjugate,
)


def _lpo_defaults(key) -> dict:
    return {
        "params": lpo_init(key),
        "ppo_weight": jnp.asarray(0.0, jnp.float32),
        "epsilon": jnp.asarray(0.2, jnp.float32),
    }


def _ta_lpo_defaults(key) -> dict:
    return {
        "params": ta_lpo_init(key),
        "ppo_weight": jnp.asarray(0.0, jnp.float32),
        "epsilon": jnp.asarray(0.2, jnp.float32),
    }


_REGISTRY: dict[str, Surrogate] = {
    "ppo_clip": as_surrogate(ppo_clip),
    "kl_penalty": as_surrogate(kl_penalty),
    "kl_penalty_adaptive": as_surrogate(kl_penalty_adaptive)._replace(
        adapt_init=kl_adapt_init, adapt=kl_adapt
    ),
    "mdpo": as_surrogate(mdpo),
    "dpo": as_surrogate(dpo),
    "lpo": Surrogate(loss=lpo, init=_lpo_defaults),
    "ta_lpo": Surrogate(loss=ta_lpo, init=_ta_lpo_defaults),
}


def names() -> list[str]:
    """Sorted names of the registered policy surrogates."""
    return sorted(_REGISTRY)


def get(name: str | Callable | Surrogate) -> Surrogate:
    """The registered :class:`Surrogate` called ``name``.

    A callable or a :class:`Surrogate` passes through :func:`as_surrogate`, so callers can
    accept "a name or a function" with one call.

    Raises:
      ValueError: unknown name; the message lists the accepted names.
    """
    if isinstance(name, str):
        try:
            return _REGISTRY[name]
        except KeyError:
            raise ValueError(
                f"unknown objective {name!r}; choose one of: {', '.join(names())}"
            ) from None
    return as_surrogate(name)


def register(
    name: str, fn_or_surrogate: Callable | Surrogate, *, overwrite: bool = False
) -> Surrogate:
    """Add a policy surrogate under ``name`` and return its :class:`Surrogate`.

    A plain ``fn(batch, *, hp=default, ...)`` is wrapped by :func:`as_surrogate` (its keyword
    defaults become ``init``'s hparams); objectives with array parameters and no defaults
    must be registered as a :class:`Surrogate` with an explicit ``init``.

    Raises:
      ValueError: ``name`` is already registered and ``overwrite`` is False, or is not a
        non-empty string.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"objective name must be a non-empty string, got {name!r}")
    if name in _REGISTRY and not overwrite:
        raise ValueError(
            f"objective {name!r} is already registered; pass overwrite=True to replace it"
        )
    surrogate = as_surrogate(fn_or_surrogate)
    _REGISTRY[name] = surrogate
    return surrogate


__all__ = [
    # contract
    "PolicyBatch", "Surrogate", "as_surrogate", "keyword_defaults", "kl_old_new", "kl_new_old",
    # registry
    "get", "names", "register",
    # policy surrogates
    "ppo_clip", "kl_penalty", "kl_penalty_adaptive", "kl_adapt", "kl_adapt_init", "mdpo",
    "mdpo_temperature", "dpo", "lpo", "ta_lpo", "mirror_learning_loss",
    # drifts
    "ppo_drift", "dpo_drift", "lpo_drift", "ta_lpo_drift", "lpo_features", "ta_lpo_features",
    "lpo_init", "ta_lpo_init",
    # value losses
    "squared_error", "huber", "clipped_value_loss", "expectile", "gumbel", "chi2_conjugate",
    "tv_conjugate", "dual_value_loss",
    # offline
    "awr_weights", "awr_actor", "td3bc_actor", "cql_penalty",
]

from rlx.objectives.export import load, save  # noqa: E402  (learned objectives on disk: rlx.objectives.export)

__all__ += ["load", "save"]

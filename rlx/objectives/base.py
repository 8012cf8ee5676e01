"""The policy-surrogate contract shared by every on-policy objective.

A surrogate is a pure function ``loss(batch, **hparams) -> scalar`` where ``batch`` is a
:class:`PolicyBatch` of flat arrays and ``hparams`` are keyword arrays (clip range,
temperatures, drift-network weights...).  Because hyperparameters are ordinary keyword
arguments they can be vmapped, differentiated or evolved like any other array.

The agent stores ``hparams`` in its dynamic hyperparameter pytree (``hp.objective``); the
registry entry :class:`Surrogate` says how to make defaults for them, and, for the few
objectives that adapt a coefficient between iterations (adaptive KL), how to do so.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

Array = jax.Array


class PolicyBatch(NamedTuple):
    """Everything a policy surrogate may look at, for a minibatch of B samples.

    Attributes:
      log_ratio: [B] log π_θ(a|s) − log π_old(a|s).
      advantage: [B] advantage estimates (already normalised if the agent does that).
      progress: [] fraction of training done, n/N in [0, 1].
      horizon: [] total number of training iterations N of this run.
    """

    log_ratio: Array
    advantage: Array
    progress: Array
    horizon: Array

    @property
    def ratio(self) -> Array:
        return jnp.exp(self.log_ratio)


def kl_old_new(log_ratio: Array) -> Array:
    """Per-sample unbiased, non-negative estimate of KL(π_old ‖ π_θ) from a ~ π_old.

    k3 estimator (Schulman 2020): (r − 1) − log r, with r = π_θ/π_old.
    """
    return jnp.expm1(log_ratio) - log_ratio


def kl_new_old(log_ratio: Array) -> Array:
    """Per-sample unbiased, non-negative estimate of KL(π_θ ‖ π_old) from a ~ π_old.

    Importance-weighted: E_old[r·log r] = KL(π_θ‖π_old); subtracting the zero-mean
    control variate (r − 1) gives r·log r − (r − 1) ≥ 0.
    """
    r = jnp.exp(log_ratio)
    return r * log_ratio - jnp.expm1(log_ratio)


class Surrogate(NamedTuple):
    """A registered policy objective.

    Attributes:
      loss: ``loss(batch: PolicyBatch, **hparams) -> scalar``.
      init: ``init(key) -> dict`` of default hparams (arrays; keys must match ``loss``).
      adapt_init: optional ``hparams -> dict`` of quantities adapted between iterations
        (e.g. the adaptive-KL coefficient). They override ``hparams`` of the same name.
      adapt: optional ``(adapted, hparams, mean_kl) -> adapted``, called once per
        iteration with the batch-mean KL(π_old‖π_θ) measured after the update.
    """

    loss: Callable[..., Array]
    init: Callable[[Array], dict]
    adapt_init: Optional[Callable[[dict], dict]] = None
    adapt: Optional[Callable[[dict, dict, Array], dict]] = None


def keyword_defaults(fn: Callable) -> dict[str, Any]:
    """Keyword-only defaults of ``fn`` as float32 arrays: the hparams of a plain function."""
    out = {}
    for name, p in inspect.signature(fn).parameters.items():
        if p.kind is inspect.Parameter.KEYWORD_ONLY:
            if p.default is inspect.Parameter.empty:
                raise ValueError(
                    f"objective {getattr(fn, '__name__', fn)!r}: keyword argument {name!r} has no "
                    "default; register it with an explicit init function instead"
                )
            out[name] = jnp.asarray(p.default, jnp.float32)
    return out


def as_surrogate(fn: Callable | Surrogate) -> Surrogate:
    """Wrap a user's plain ``fn(batch, *, hp=default, ...)`` into a :class:`Surrogate`."""
    if isinstance(fn, Surrogate):
        return fn
    if not callable(fn):
        raise TypeError(f"objective must be a callable or a Surrogate, got {type(fn).__name__}")
    defaults = keyword_defaults(fn)
    return Surrogate(loss=fn, init=lambda key: dict(defaults))

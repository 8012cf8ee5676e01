"""Save and load a learned objective: arrays in ``.npz`` (no pickle), a JSON sidecar beside it.

    objectives.save("out/objective.npz", "lpo", hparams, metadata={"generations": 200})
    surrogate = objectives.load("out/objective.npz")     # a Surrogate, like objectives.get("lpo")
    loss = surrogate.loss(batch, **surrogate.init(key))  # the saved hparams, whatever the key

On disk:

- ``NAME.npz``: one array per hyperparameter leaf, keyed by its path in the hparams dict
  joined with "/" (``params/w1``, ``params/w2``, ``ppo_weight``, ``epsilon``). Read with
  ``allow_pickle=False``: object arrays are refused.
- ``NAME.json``: ``{"format": "rlx-objective", "version": 1, "base": "lpo", "keys": [...],
  "metadata": {...}}``. ``base`` is the registered objective whose loss function the
  arrays parameterise; ``metadata`` is free-form (how it was trained).

The loaded :class:`Surrogate` is the base objective's pure loss with an ``init`` that
returns the saved arrays, so it plugs in wherever a built-in objective does.
"""
from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Mapping

import numpy as np

FORMAT = "rlx-objective"
VERSION = 1


class ObjectiveFileError(ValueError):
    """A saved objective that cannot be loaded; the message names the file and the key."""


def _flatten(tree: Mapping, prefix: str = "") -> dict[str, np.ndarray]:
    out = {}
    for k, v in tree.items():
        if not isinstance(k, str) or not k or "/" in k:
            raise ValueError(f"objective hparam keys must be non-empty strings without '/', got {k!r}")
        path = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, path + "/"))
        else:
            out[path] = np.asarray(v, np.float32)
    return out


def _unflatten(flat: Mapping[str, np.ndarray]) -> dict:
    out: dict = {}
    for path, v in flat.items():
        node = out
        *parents, leaf = path.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = v
    return out


def sidecar_path(path: str) -> str:
    """The JSON sidecar that goes with ``path`` (``x/objective.npz`` → ``x/objective.json``)."""
    root, _ = os.path.splitext(path)
    return root + ".json"


def save(path: str, base: str, hparams: Mapping, metadata: Mapping | None = None) -> str:
    """Write ``hparams`` of the registered objective ``base`` to ``path`` (.npz) plus its sidecar.

    Returns the .npz path. Raises ValueError for an unknown ``base`` or a non-finite value.
    """
    from rlx import objectives

    objectives.get(base)  # unknown names fail here, listing the accepted ones
    if not path.endswith(".npz"):
        path += ".npz"
    flat = _flatten(hparams)
    for k, v in flat.items():
        if not np.all(np.isfinite(v)):
            raise ValueError(f"objective hparam {k!r} has non-finite values; refusing to save {path}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.savez(path, **flat)
    side = {"format": FORMAT, "version": VERSION, "base": base, "keys": sorted(flat),
            "metadata": dict(metadata or {})}
    with open(sidecar_path(path), "w") as f:
        json.dump(side, f, indent=2, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    return path


def read(path: str) -> tuple[str, dict, dict]:
    """``(base, hparams, metadata)`` from a saved objective, every field checked.

    ``path`` may be the .npz, its .json sidecar, or a directory holding ``objective.npz``.

    Raises:
      ObjectiveFileError: missing or unreadable file, wrong format, unknown base objective,
        missing/extra/non-numeric/non-finite arrays; the message names the file and the key.
    """
    from rlx import objectives

    if os.path.isdir(path):
        path = os.path.join(path, "objective.npz")
    if path.endswith(".json"):
        path = path[:-5] + ".npz"
    side = sidecar_path(path)
    for p in (path, side):
        if not os.path.isfile(p):
            raise ObjectiveFileError(f"{p}: no such file (a saved objective is NAME.npz plus NAME.json)")
    try:
        with open(side) as f:
            meta = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ObjectiveFileError(f"{side}: not a readable JSON sidecar ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ObjectiveFileError(f"{side}: key 'format' must be {FORMAT!r}, got {meta.get('format') if isinstance(meta, dict) else meta!r}")
    if meta.get("version") != VERSION:
        raise ObjectiveFileError(f"{side}: key 'version' must be {VERSION}, got {meta.get('version')!r}")
    base = meta.get("base")
    if base not in objectives.names():
        raise ObjectiveFileError(f"{side}: key 'base' is {base!r}; choose one of: {', '.join(objectives.names())}")
    keys = meta.get("keys")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ObjectiveFileError(f"{side}: key 'keys' must be a list of array names, got {keys!r}")
    try:
        with np.load(path, allow_pickle=False) as data:
            flat = {}
            for k in data.files:
                try:
                    flat[k] = data[k]
                except ValueError as e:  # object arrays need pickle: refused
                    raise ObjectiveFileError(f"{path}: key {k!r} cannot be read without pickle ({e})") from None
    except ObjectiveFileError:
        raise
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as e:  # ValueError: not a zip, numpy wants pickle
        raise ObjectiveFileError(f"{path}: not a readable .npz file ({e})") from None
    missing, extra = sorted(set(keys) - set(flat)), sorted(set(flat) - set(keys))
    if missing:
        raise ObjectiveFileError(f"{path}: key {missing[0]!r} is listed in {side} but missing from the .npz")
    if extra:
        raise ObjectiveFileError(f"{path}: key {extra[0]!r} is in the .npz but not listed in {side}")
    for k, v in flat.items():
        if v.dtype.kind not in "fiu":
            raise ObjectiveFileError(f"{path}: key {k!r} has dtype {v.dtype}; expected a numeric array")
        if not np.all(np.isfinite(v)):
            raise ObjectiveFileError(f"{path}: key {k!r} has non-finite values")
    hparams = _unflatten({k: v.astype(np.float32) for k, v in flat.items()})
    _check_against_base(path, base, hparams)
    return base, hparams, dict(meta.get("metadata") or {})


def _check_against_base(path: str, base: str, hparams: dict) -> None:
    """The saved arrays must have the structure of ``base``'s default hparams and run through its loss."""
    import jax
    import jax.numpy as jnp

    from rlx import objectives

    surrogate = objectives.get(base)
    ref = _flatten(surrogate.init(jax.random.PRNGKey(0)))
    got = _flatten(hparams)
    for k in sorted(set(ref) | set(got)):
        if k not in got:
            raise ObjectiveFileError(f"{path}: key {k!r} is missing; objective {base!r} needs {sorted(ref)}")
        if k not in ref:
            raise ObjectiveFileError(f"{path}: key {k!r} is not a hyperparameter of {base!r} (expected {sorted(ref)})")
        if got[k].ndim != ref[k].ndim:
            raise ObjectiveFileError(f"{path}: key {k!r} has shape {got[k].shape}; {base!r} expects "
                                     f"{ref[k].ndim} dimension(s), like {ref[k].shape}")
    batch = objectives.PolicyBatch(jnp.zeros(2), jnp.ones(2), jnp.float32(0.0), jnp.float32(1.0))
    try:
        jax.eval_shape(lambda hp: surrogate.loss(batch, **hp), jax.tree.map(jnp.asarray, hparams))
    except (ValueError, TypeError) as e:
        raise ObjectiveFileError(f"{path}: arrays do not fit objective {base!r}: {e}") from None


def load(path: str):
    """A :class:`~rlx.objectives.Surrogate` from a file written by :func:`save`.

    Its ``loss`` is the base objective's pure loss (same signature as the built-in); its
    ``init(key)`` ignores the key and returns the saved hyperparameters as float32 arrays.
    """
    import jax.numpy as jnp

    from rlx import objectives

    base, hparams, _ = read(path)
    surrogate = objectives.get(base)

    def init(key=None):
        del key
        import jax

        return jax.tree.map(jnp.asarray, hparams)

    return surrogate._replace(init=init)

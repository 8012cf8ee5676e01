"""Checkpoints of a whole population of runs, with orbax, and the checks that make resuming safe.

A checkpoint directory holds

    rlx_checkpoint.json   what the runs are: agent, static config, hyperparameter and seed
                          fingerprint, iteration count... Resuming with anything else is an error.
    steps/<iteration>/    orbax: ``state`` (the run loop's carry: every leaf of the agent state of
                          every run, sharded as it was: params, optimiser state, RNG keys, env
                          states, normaliser statistics, replay buffers, the iteration counter)
                          and ``history`` (the metrics of the iterations done so far).

Both are saved *packed*: the leaves of each dtype concatenated into one [runs, n] array (the
runs axis, and so its sharding, is kept). orbax's cost is per array, and a PPO carry has ~60
leaves: packing cut a save from ~95 ms to ~40 ms of CPU (experiments/bench/bench_checkpoint.py),
which is what keeps checkpointing under 5% of a run's throughput. The tree structure comes back from
the run's own state (the restore template), the history's names from a JSON layout stored
beside it as bytes.

Nothing here knows about an agent: the state is any pytree of arrays, so PPO, SAC, IQL or a
meta-learning population checkpoint the same way. No pickle: orbax stores arrays, the
metadata is JSON.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from typing import Any

import numpy as np

META = "rlx_checkpoint.json"
FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed: missing, corrupt, or made by a different run."""


def fingerprint(**parts) -> dict:
    """JSON-able description of a run; arrays are replaced by a sha256 of their bytes, shape and dtype."""

    def norm(x):
        if isinstance(x, dict):
            return {str(k): norm(v) for k, v in sorted(x.items())}
        if isinstance(x, (list, tuple)):
            return [norm(v) for v in x]
        if isinstance(x, (str, int, float, bool)) or x is None:
            return x
        if hasattr(x, "shape") or isinstance(x, np.generic):
            return array_digest(x)
        return repr(x)

    return {k: norm(v) for k, v in parts.items()}


def array_digest(tree) -> str:
    import jax

    h = hashlib.sha256()
    leaves, treedef = jax.tree.flatten(tree)
    h.update(str(treedef).encode())
    for x in leaves:
        x = np.asarray(x)
        h.update(f"{x.shape}{x.dtype}".encode())
        h.update(np.ascontiguousarray(x).tobytes())
    return "sha256:" + h.hexdigest()


@functools.cache
def _pack_jit():
    import jax

    return jax.jit(_pack)  # one small program per state structure, cached by jit


class Checkpointer:
    """Saves and restores ``(iteration, state, history)`` in ``directory``.

    ``meta`` is the run's fingerprint (see :func:`fingerprint`). Opening a directory that holds a
    checkpoint of another run raises :class:`CheckpointError` naming the fields that differ.
    """

    def __init__(self, directory: str, meta: dict, max_to_keep: int = 2):
        import orbax.checkpoint as ocp

        self.directory = os.path.abspath(directory)
        self.meta = json.loads(json.dumps(meta))  # as it reads back from disk
        os.makedirs(self.directory, exist_ok=True)
        self._manager = ocp.CheckpointManager(
            os.path.join(self.directory, "steps"),
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                                 enable_async_checkpointing=True))

    # -- metadata -------------------------------------------------------------------------
    def _meta_path(self) -> str:
        return os.path.join(self.directory, META)

    def stored_meta(self) -> dict | None:
        path = self._meta_path()
        if not os.path.exists(path):
            return None
        try:
            with open(path) as f:
                stored = json.load(f)
        except (OSError, ValueError) as e:
            raise CheckpointError(f"checkpoint metadata {path} is unreadable ({e}); the directory is corrupt. "
                                  "Delete it or resume from another directory")
        if not isinstance(stored, dict) or stored.get("format") != FORMAT or "run" not in stored:
            raise CheckpointError(f"{path} is not an rlx checkpoint description (format {FORMAT})")
        return stored

    def check_compatible(self) -> None:
        stored = self.stored_meta()
        if stored is None:
            return
        diffs = _diff(stored["run"], self.meta)
        if diffs:
            raise CheckpointError(
                f"checkpoint in {self.directory} was made by a different run; differing fields: "
                + "; ".join(f"{k}: checkpoint has {a!r}, this run has {b!r}" for k, a, b in diffs[:8])
                + ("" if len(diffs) <= 8 else f" (and {len(diffs) - 8} more)")
                + ". Resume with the original settings, or write to a new directory")

    def _write_meta(self, iteration: int) -> None:
        import jax

        if jax.process_index() != 0:
            return
        tmp = self._meta_path() + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"format": FORMAT, "iteration": int(iteration), "run": self.meta}, f, indent=1)
        os.replace(tmp, self._meta_path())

    # -- state ----------------------------------------------------------------------------
    def latest_iteration(self) -> int | None:
        return self._manager.latest_step()

    def save(self, iteration: int, state: Any, history: dict) -> None:
        import orbax.checkpoint as ocp

        self._write_meta(self.stored_iteration() or 0)  # describe the run before its first save lands
        self._manager.save(int(iteration), args=ocp.args.Composite(
            state=ocp.args.StandardSave(_pack_jit()(state)),
            history=ocp.args.StandardSave(_pack_history(history))), force=True)
        # Asynchronous: orbax copies the arrays now and writes them in the background while the
        # next chunk runs; a step directory appears under steps/ only once it is complete.
        self._write_meta(iteration)

    def wait(self) -> None:
        """Block until every checkpoint started has been written."""
        self._manager.wait_until_finished()

    def stored_iteration(self) -> int | None:
        stored = self.stored_meta() if os.path.exists(self._meta_path()) else None
        return None if stored is None else stored.get("iteration")

    def restore(self, template: Any) -> tuple[int, Any, dict]:
        """Latest ``(iteration, state, history)``; ``template`` gives the state's structure and shardings."""
        import jax
        import orbax.checkpoint as ocp

        if self.stored_meta() is None:
            raise CheckpointError(f"nothing to resume in {self.directory}: no {META} (not an rlx checkpoint "
                                  "directory, or the run was stopped before its first checkpoint)")
        self.check_compatible()
        step = self._manager.latest_step()
        if step is None:
            raise CheckpointError(f"nothing to resume in {self.directory}: {META} is there but no completed "
                                  "checkpoint under steps/ (corrupt or deleted)")
        sharding = _packed_sharding(template)
        abstract = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=sharding)
                    for k, v in jax.eval_shape(_pack, template).items()}
        try:
            out = self._manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract), history=ocp.args.StandardRestore()))
            packed, history = out["state"], _unpack_history(dict(out["history"] or {}))
        except Exception as e:  # orbax raises many kinds; all mean the same to the user
            raise CheckpointError(f"checkpoint {self.directory}/steps/{step} is corrupt or incomplete and cannot "
                                  f"be restored ({type(e).__name__}: {str(e)[:300]})") from e
        bad = [k for k in abstract if k not in packed or packed[k].shape != abstract[k].shape]
        if bad or set(packed) != set(abstract):
            raise CheckpointError(f"checkpoint {self.directory}/steps/{step} does not match this run's state "
                                  f"(the {', '.join(bad or sorted(set(packed) ^ set(abstract)))} leaves differ)")
        shardings = jax.tree.map(lambda x: x.sharding, template)
        state = jax.jit(lambda p: _unpack(p, template), out_shardings=shardings)(packed)
        return int(step), state, history

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


def _lead(leaves) -> int | None:
    """The leading (runs) dimension every leaf shares, or None."""
    dims = {np.shape(x)[0] if np.ndim(x) else None for x in leaves}
    return dims.pop() if len(dims) == 1 and None not in dims else None


def _pack(tree) -> dict:
    """One array per dtype: the leaves' [lead, -1] views concatenated along the last axis."""
    import jax.numpy as jnp

    import jax

    leaves = jax.tree.leaves(tree)
    lead = _lead(leaves)
    groups: dict = {}
    for x in leaves:
        groups.setdefault(str(x.dtype), []).append(x.reshape((lead, -1)) if lead else x.reshape(-1))
    cat = jnp.concatenate if any(not isinstance(x, np.ndarray) for x in leaves) else np.concatenate
    return {k: cat(v, axis=-1) for k, v in sorted(groups.items())}


def _unpack(packed: dict, template):
    """Inverse of :func:`_pack` for a tree shaped like ``template`` (arrays or ShapeDtypeStructs)."""
    import jax

    leaves, treedef = jax.tree.flatten(template)
    lead = _lead(leaves)
    offset: dict = {}
    out = []
    for x in leaves:
        k, size = str(x.dtype), int(np.prod(x.shape, dtype=np.int64))
        n = size // lead if lead else size
        o = offset.get(k, 0)
        out.append(packed[k][..., o:o + n].reshape(x.shape))
        offset[k] = o + n
    return treedef.unflatten(out)


def _pack_history(history: dict) -> dict:
    """Host metrics {name: array} → packed arrays plus their layout (names, shapes) as JSON bytes."""
    names = sorted(history)
    arrays = [np.asarray(history[k]) for k in names]
    layout = json.dumps([[k, list(a.shape), str(a.dtype)] for k, a in zip(names, arrays)]).encode()
    flat: dict = {}
    for a in arrays:
        flat.setdefault(str(a.dtype), []).append(a.reshape(-1))
    packed = {k: np.concatenate(v) for k, v in flat.items()}
    packed["layout"] = np.frombuffer(layout, np.uint8).copy()
    return packed


def _unpack_history(packed: dict) -> dict:
    layout = json.loads(np.asarray(packed["layout"], np.uint8).tobytes().decode())
    offset: dict = {}
    out = {}
    for name, shape, dtype in layout:
        n = int(np.prod(shape, dtype=np.int64))
        o = offset.get(dtype, 0)
        out[name] = np.asarray(packed[dtype])[o:o + n].reshape(shape)
        offset[dtype] = o + n
    return out


def _packed_sharding(template):
    """The sharding of a packed [runs, n] array: the runs axis as the template's leaves have it."""
    import jax
    from jax.sharding import NamedSharding, PartitionSpec

    s = getattr(jax.tree.leaves(template)[0], "sharding", None)
    if isinstance(s, NamedSharding):
        spec = tuple(s.spec)
        return NamedSharding(s.mesh, PartitionSpec(spec[0] if spec else None))
    return s


def _leaf_pairs(a, b):
    import jax

    la, _ = jax.tree_util.tree_flatten_with_path(a)
    lb = jax.tree.leaves(b)
    return [(p, x, y) for (p, x), y in zip(la, lb)]


def _diff(a, b, prefix=""):
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k, "<missing>"), b.get(k, "<missing>"), f"{prefix}{k}.")
        return out
    return [] if a == b else [(prefix.rstrip("."), a, b)]

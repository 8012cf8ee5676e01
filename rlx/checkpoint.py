"""Checkpoints of a whole population of runs, with orbax, and the checks that make resuming safe.

A checkpoint directory holds

    rlx_checkpoint.json   what the runs are: agent, static config, hyperparameter and seed
                          fingerprint, iteration count... Resuming with anything else is an error.
    steps/<iteration>/    orbax: ``state`` (the run loop's carry: every leaf of the agent state of
                          every run, sharded as it was: params, optimiser state, RNG keys, env
                          states, normaliser statistics, replay buffers, the iteration counter)
                          and ``history`` (the metrics of the iterations done so far).

Nothing here knows about an agent: the state is any pytree of arrays, so PPO, SAC, IQL or a
meta-learning population checkpoint the same way. No pickle: orbax stores arrays, the
metadata is JSON.
"""
from __future__ import annotations

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
            state=ocp.args.StandardSave(state),
            history=ocp.args.StandardSave({k: np.asarray(v) for k, v in history.items()})), force=True)
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
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), template)
        try:
            out = self._manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract), history=ocp.args.StandardRestore()))
        except Exception as e:  # orbax raises many kinds; all mean the same to the user
            raise CheckpointError(f"checkpoint {self.directory}/steps/{step} is corrupt or incomplete and cannot "
                                  f"be restored ({type(e).__name__}: {str(e)[:300]})") from e
        state, history = out["state"], dict(out["history"] or {})
        bad = [str(p) for p, a, b in _leaf_pairs(template, state) if a.shape != b.shape or a.dtype != b.dtype]
        if bad:
            raise CheckpointError(f"checkpoint {self.directory}/steps/{step} does not match this run's state "
                                  f"(shape or dtype differ at {', '.join(bad[:5])})")
        return int(step), state, {k: np.asarray(v) for k, v in history.items()}

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


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

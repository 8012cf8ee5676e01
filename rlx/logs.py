"""Metrics on disk (CSV, JSON, TensorBoard) and the guard that stops a run on a non-finite loss.

Both work on the host, once per chunk of iterations, on the metrics ``advance`` returned:
a dict of arrays shaped [runs, iterations_in_chunk]. Nothing here knows about an agent: every
metric whose name starts with "loss" (``loss/policy``, ``loss/critic``, ...) is guarded.
"""
from __future__ import annotations

import json
import os
import re
from typing import Sequence

import numpy as np

from rlx.report import window_means


class NonFiniteError(FloatingPointError):
    """A loss became NaN or inf; the message names the iteration, the loss term and the runs."""

    def __init__(self, message: str, iteration: int, term: str, runs: list[int]):
        super().__init__(message)
        self.iteration, self.term, self.runs = iteration, term, runs


def guarded_keys(metrics: dict) -> list[str]:
    return sorted(k for k in metrics if k.startswith("loss") or k.startswith("objective/"))


def check_finite(metrics: dict, start: int, labels: Sequence[dict] | None = None, keys=None) -> None:
    """Raise :class:`NonFiniteError` at the first iteration (1-based) where a guarded metric is not finite.

    ``metrics[k]`` is [runs, iterations] for iterations ``start+1 .. start+iterations``.
    """
    keys = guarded_keys(metrics) if keys is None else keys
    first = None
    for k in keys:
        bad = ~np.isfinite(np.asarray(metrics[k], np.float64))
        if not bad.any():
            continue
        cols = np.nonzero(bad.any(axis=0))[0]
        it = int(cols[0])
        if first is None or it < first[0]:
            first = (it, k, np.nonzero(bad[:, it])[0].tolist())
    if first is None:
        return
    it, term, runs = first
    iteration = start + it + 1
    who = ", ".join(_label(labels[r]) if labels else f"run {r}" for r in runs[:5]) + (" ..." if len(runs) > 5 else "")
    raise NonFiniteError(f"non-finite {term} at iteration {iteration} in {len(runs)} run(s): {who}. The run was "
                         "stopped; the last checkpoint (if any) holds the state before this chunk", iteration, term,
                         runs)


def _label(label: dict) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in label.items())


class TensorBoard:
    """One tensorboardX writer per run (``tb/<label>``), so TensorBoard compares runs side by side."""

    def __init__(self, directory: str, labels: Sequence[dict], steps_per_iteration: int, max_runs: int = 64):
        from tensorboardX import SummaryWriter

        self.per_iter = steps_per_iteration
        names = [re.sub(r"[^A-Za-z0-9_.=,-]+", "_", _label(lab)) or f"run{r}" for r, lab in enumerate(labels)]
        self.writers = [SummaryWriter(os.path.join(directory, "tb", name)) for name in names[:max_runs]]

    def write(self, metrics: dict, start: int) -> None:
        for k, v in metrics.items():
            v = np.asarray(v, np.float64)
            for r, w in enumerate(self.writers):
                for j in range(v.shape[1]):
                    if np.isfinite(v[r, j]):
                        tag = "eval/return" if k == "eval/return" else k
                        w.add_scalar(tag, float(v[r, j]), (start + j + 1) * self.per_iter)

    def close(self) -> None:
        for w in self.writers:
            w.close()


def write_metrics_json(path: str, metrics: dict, labels: Sequence[dict], steps_per_iteration: int,
                       every: int = 1) -> None:
    """Every metric as lists per run: {"labels", "steps_per_iteration", "every", "iteration", "metrics"}.

    Per-iteration metrics are means over windows of ``every`` iterations ending at ``iteration``
    (see :func:`rlx.report.window_means`); ``eval/*`` entries are kept as they are.
    """
    def clean(a):
        a = np.asarray(a, np.float64)
        return [[float(x) if np.isfinite(x) else None for x in row] for row in a.reshape(a.shape[0], -1)]

    per_window, last = window_means(metrics, every)
    evals = {k: v for k, v in metrics.items() if k.startswith("eval/")}
    with open(path, "w") as f:
        json.dump({"labels": list(labels), "steps_per_iteration": steps_per_iteration, "every": every,
                   "iteration": last.tolist(),
                   "metrics": {k: clean(v) for k, v in {**per_window, **evals}.items()}}, f)

"""What a finished run leaves on disk: summary.json, metrics.csv, learning_curve.png, a table."""
from __future__ import annotations

import csv
import json
import os
import warnings
from typing import Sequence

import numpy as np


def _finite(x):
    x = float(x)
    return x if np.isfinite(x) else None


def write_summary(path: str, summary: dict) -> None:
    with open(path, "w") as f:
        json.dump(summary, f, indent=2, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))


def log_every(num_iterations: int, max_rows: int = 1000) -> int:
    """Iterations per logged row, so a run writes at most ``max_rows`` rows (1 for short runs).

    An off-policy agent's iteration is one env step: logging each one of a 1M-step run would
    write a million rows per seed.
    """
    return max(1, -(-num_iterations // max_rows))


def window_means(metrics: dict, every: int) -> tuple[dict, np.ndarray]:
    """Per-iteration metrics [runs, iterations] as NaN-aware means over windows of ``every`` iterations.

    Returns ``({name: [runs, windows]}, last)``, ``last`` the 1-based iteration that ends each
    window (a shorter last window keeps the tail). ``eval/*`` entries are left out.
    """
    per_iter = {k: np.asarray(v, np.float64) for k, v in metrics.items() if not k.startswith("eval/")}
    iters = next(iter(per_iter.values())).shape[1]
    last = np.array(list(range(every, iters, every)) + [iters])
    first = np.concatenate([[0], last[:-1]])
    with warnings.catch_warnings():  # a window without a finished episode is NaN, on purpose
        warnings.simplefilter("ignore", RuntimeWarning)
        out = {k: np.stack([np.nanmean(v[:, a:b].reshape(v.shape[0], b - a, -1), axis=(1, 2))
                            for a, b in zip(first, last)], axis=1) for k, v in per_iter.items()}
    return out, last


def write_metrics_csv(path: str, metrics: dict, labels: Sequence[dict], steps_per_iteration: int,
                      every: int = 1) -> None:
    """One row per (run, window of ``every`` iterations): run labels, the window's last iteration,
    env_steps, the window's mean of every scalar metric, and the evaluation return if one fell in it."""
    per_window, last = window_means(metrics, every)
    eval_ret, eval_it = np.asarray(metrics["eval/return"]), np.asarray(metrics["eval/iteration"])
    runs = next(iter(per_window.values())).shape[0]
    keys = sorted(per_window)
    label_keys = list(labels[0]) if labels else []
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(label_keys + ["iteration", "env_steps"] + keys + ["eval_return"])
        for r in range(runs):
            window_of_eval = np.searchsorted(last, eval_it[r])  # the window each evaluation falls in
            evals = dict(zip(window_of_eval.tolist(), eval_ret[r].tolist()))
            for j, it in enumerate(last.tolist()):
                row = [labels[r][k] for k in label_keys] + [it, it * steps_per_iteration]
                row += [_fmt(per_window[k][r, j]) for k in keys] + [_fmt(evals.get(j, np.nan))]
                w.writerow(row)


def _fmt(x):
    x = float(x)
    return "" if not np.isfinite(x) else f"{x:.6g}"


def plot_learning_curve(path: str, metrics: dict, steps_per_iteration: int, title: str,
                        groups: dict[str, Sequence[int]] | None = None) -> None:
    """Training episode return (median and 10–90% band across seeds) and deterministic evals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ret = np.asarray(metrics["episode_return"], np.float64)  # [runs, iters]
    runs, iters = ret.shape
    groups = groups or {"": list(range(runs))}
    x = np.arange(1, iters + 1) * steps_per_iteration
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for (name, idx), color in zip(groups.items(), plt.cm.tab10.colors * 10):
        with warnings.catch_warnings():  # iterations before any run finished an episode: all NaN, left blank
            warnings.simplefilter("ignore", RuntimeWarning)
            r = _smooth(_ffill(ret[list(idx)]), max(1, iters // 100))
            med = np.nanmedian(r, 0)
            lo, hi = np.nanpercentile(r, 10, 0), np.nanpercentile(r, 90, 0)
        label = f"{name} " if name else ""
        ax.plot(x, med, color=color, lw=1.6, label=f"{label}train return (median of {len(idx)}, smoothed)")
        ax.fill_between(x, lo, hi, color=color, alpha=0.2, lw=0)
        ev_x = np.asarray(metrics["eval/iteration"])[list(idx)][0] * steps_per_iteration
        ev = np.asarray(metrics["eval/return"])[list(idx)]
        ax.errorbar(ev_x, np.median(ev, 0), yerr=[np.median(ev, 0) - ev.min(0), ev.max(0) - np.median(ev, 0)],
                    fmt="o", color=color, ms=4, capsize=2, label=f"{label}deterministic eval (median, min–max)")
    ax.set_xlabel("env steps")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_eval_curve(path: str, metrics: dict, steps_per_iteration: int, title: str, scored=None) -> None:
    """Deterministic evaluations over training (median, min–max across runs); offline runs.

    ``scored = (dataset, dataset_score)`` plots normalised scores with the data's own
    average as a reference line; otherwise raw returns.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ret = np.asarray(metrics["eval/return"], np.float64)
    x = np.asarray(metrics["eval/iteration"])[0] * steps_per_iteration
    y = scored[0].normalized_score(ret) if scored else ret
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    ax.plot(x, np.median(y, 0), "o-", lw=1.6, ms=3, label=f"median of {len(y)} runs")
    ax.fill_between(x, y.min(0), y.max(0), alpha=0.2, lw=0, label="min–max")
    if scored:
        ax.axhline(scored[1], color="0.4", ls="--", lw=1, label=f"dataset average ({scored[1]:.1f})")
    ax.set_xlabel("gradient steps")
    ax.set_ylabel("normalised score" if scored else "episode return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _smooth(a, window: int):
    """Trailing moving average over iterations (NaN-aware), per run."""
    if window <= 1:
        return a
    out = np.empty_like(a)
    for i in range(a.shape[1]):
        out[:, i] = np.nanmean(a[:, max(0, i - window + 1): i + 1], axis=1)
    return out


def _ffill(a):
    """Carry the last finished episode's return forward over iterations where none finished."""
    a = a.copy()
    for r in range(a.shape[0]):
        last = np.nan
        for i in range(a.shape[1]):
            if np.isnan(a[r, i]):
                a[r, i] = last
            else:
                last = a[r, i]
    return a


def table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """A plain fixed-width text table."""
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = lambda vals: "  ".join(v.rjust(w) for v, w in zip(vals, widths))
    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells])


def _cell(v):
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    return str(v)


def ensure_dir(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    return path

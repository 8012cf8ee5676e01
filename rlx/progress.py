"""A tqdm progress bar fed from inside jit.

``make_train(..., progress=bar.callback)`` calls ``bar.callback(iteration)`` through
``jax.debug.callback`` at the end of every block of iterations. Under ``vmap`` the callback
may arrive once per run or once with a batch; the bar shows the furthest iteration seen.
"""
from __future__ import annotations

import sys

import numpy as np
from tqdm.auto import tqdm


class ProgressBar:
    """Iterations on the bar, env steps (or gradient steps) per second in its postfix."""

    def __init__(self, total_iterations: int, steps_per_iteration: int, runs: int = 1, desc: str = "train",
                 unit_name: str = "env-steps", disable: bool = False):
        self.total, self.per_iter, self.runs, self.unit_name = total_iterations, steps_per_iteration, runs, unit_name
        self.desc, self.disable = desc, bool(disable)
        self.done, self.bar = 0, None

    def start(self) -> None:
        """Open the bar; call it after compiling so the rate counts only running time."""
        self.done = 0
        self.bar = tqdm(total=self.total, desc=self.desc, unit="it", dynamic_ncols=True, disable=self.disable,
                        mininterval=0.5, file=sys.stderr)

    def callback(self, iteration) -> None:
        if self.bar is None:
            self.start()
        it = int(np.max(np.asarray(iteration)))
        if it > self.done:
            self.bar.update(it - self.done)
            self.done = it
            rate = self.bar.format_dict.get("rate")
            if rate:  # no rate before tqdm's first timed refresh: show none, not 0
                self.bar.set_postfix_str(f"{rate * self.per_iter * self.runs:,.0f} {self.unit_name}/s", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            if self.done < self.total:
                self.bar.update(self.total - self.done)
            self.bar.close()

"""Shared by both sides of the IQL benchmark (numpy and the standard library only, so the
anchor's venv can import it too): the synthetic hopper-shaped dataset and the process
launch time.

Data: N transitions of seeded random numbers shaped like D4RL hopper (observations 11,
actions 3 in [-1, 1]). Rewards are uniform in [0, 3); episodes are 1000 steps long
(truncated), and about 1 transition in 500 is a termination. Numbers, not physics: the
benchmark times gradient steps, whose cost depends only on the shapes.
"""
from __future__ import annotations

import os
import time

OBS_DIM = 11
ACTION_DIM = 3
EPISODE_LEN = 1000


def hopper_like(n: int = 1_000_000, seed: int = 0) -> dict:
    """Arrays obs, action, reward, next_obs (float32) and terminated, truncated (bool), [n, ...]."""
    import numpy as np

    rng = np.random.default_rng(seed)
    obs = rng.standard_normal((n, OBS_DIM), dtype=np.float32)
    next_obs = np.empty_like(obs)
    next_obs[:-1] = obs[1:]  # consecutive transitions chain, as in a real dataset
    next_obs[-1] = rng.standard_normal(OBS_DIM, dtype=np.float32)
    action = rng.uniform(-1.0, 1.0, (n, ACTION_DIM)).astype(np.float32)
    reward = rng.uniform(0.0, 3.0, n).astype(np.float32)
    terminated = rng.random(n) < 0.002
    truncated = np.zeros(n, bool)
    truncated[EPISODE_LEN - 1::EPISODE_LEN] = True
    truncated &= ~terminated
    terminated[-1] |= not truncated[-1]  # the last transition ends an episode
    return {"obs": obs, "action": action, "reward": reward, "next_obs": next_obs,
            "terminated": terminated, "truncated": truncated}


def launch_time() -> float:
    """Wall-clock time (time.time()) at which this process was launched.

    The comparison script sets BENCH_LAUNCH_T just before it starts the process; otherwise
    the kernel's record of the process start is used (Linux, 10 ms resolution), and failing
    that, the time this module was first imported.
    """
    t = os.environ.get("BENCH_LAUNCH_T")
    if t:
        return float(t)
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return time.time() - (uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return _IMPORTED


_IMPORTED = time.time()


def cost_flops(compiled) -> float | None:
    """XLA's FLOP count of a compiled program (None if the backend gives none)."""
    try:
        ca = compiled.cost_analysis()
    except Exception:  # noqa: BLE001
        return None
    if isinstance(ca, (list, tuple)):
        ca = ca[0] if ca else None
    if not ca or ca.get("flops") is None:
        return None
    return float(ca["flops"])


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    if n == 0:
        return float("nan")
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])

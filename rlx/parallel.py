"""Spread a batch of runs over every device, and on a CPU over every core.

One XLA program on a CPU uses little more than one core for RL-sized work (small
matmuls inside long scans). Splitting the host into one XLA device per core and sharding
the runs axis over them runs the shards side by side: on 2 cores, 8 PPO seeds ran at
2.2× the single-device rate. On GPUs and TPUs the same code shards over the accelerators.

``use_all_cpu_cores()`` must run before jax initialises its backends; the CLI calls it
first thing. If jax is already up it changes nothing and the runs go wherever
``jax.devices()`` says.
"""
from __future__ import annotations

import os
import re
import sys

import numpy as np

_FLAG = "--xla_force_host_platform_device_count"


def use_all_cpu_cores(count: int | None = None) -> int:
    """Ask XLA for one host device per CPU core, unless the user set it or jax is already running.

    Returns the number of host devices requested (0 when nothing was changed).
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if _FLAG in flags or _backends_initialised():
        return 0
    if count is None:
        count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    count = int(count)
    if count > 1:
        os.environ["XLA_FLAGS"] = f"{flags} {_FLAG}={count}".strip()
    return count if count > 1 else 0


def _backends_initialised() -> bool:
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except Exception:  # private API moved: assume the worst, leave flags alone
        return True


def host_device_count() -> int:
    m = re.search(_FLAG + r"=(\d+)", os.environ.get("XLA_FLAGS", ""))
    return int(m.group(1)) if m else 1


def shard_runs(fn, runs: int):
    """jit ``fn`` (already vmapped over a leading runs axis of every argument) with that axis
    sharded over all devices.

    The runs axis is padded to a multiple of the device count by repeating run 0; the
    returned function takes and returns unpadded pytrees. Each run's computation is the
    same as unsharded, so results agree with ``jax.jit(fn)``.

    Returns ``(call, devices)`` where ``call(*args)`` returns ``fn``'s output, and ``call.lower``
    compiles ahead of time (``call.compile(*args)``).
    """
    import jax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    devices = jax.devices()[: max(1, runs)]  # never more devices than runs
    n = len(devices)
    padded = -(-runs // n) * n
    mesh = Mesh(np.asarray(devices), ("runs",))
    sharding = NamedSharding(mesh, PartitionSpec("runs"))

    def pad(x):
        if padded == runs:
            return x
        return jax.numpy.concatenate([x, jax.numpy.repeat(x[:1], padded - runs, axis=0)])

    jitted = jax.jit(fn, out_shardings=sharding)

    class Call:
        compiled = None

        def compile(self, *args):
            args = jax.tree.map(lambda x: jax.device_put(pad(x), sharding), args)
            self.compiled = jitted.lower(*args).compile()
            return self

        def __call__(self, *args):
            args = jax.tree.map(lambda x: jax.device_put(pad(x), sharding), args)
            fn_ = self.compiled or jitted
            out = fn_(*args)
            return jax.tree.map(lambda x: x[:runs], out)

    return Call(), devices

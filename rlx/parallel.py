"""Spread a batch of runs over every device, and on a CPU over every core.

One XLA program on a CPU uses little more than one core for RL-sized work (small
matmuls inside long scans). Splitting the host into one XLA device per core and sharding
the runs axis over them runs the shards side by side: on 2 cores, 8 PPO seeds ran at
2.0–2.3× the single-device rate (2.27× in the committed bench on the Xeon host,
experiments/results/bench_ppo_cartpole.json). On GPUs and TPUs the same code shards over
the accelerators.

A single run can use several devices too, when its update has independent *parts*: PPO's
actor and critic (each fitted on the same minibatches, clipped and stepped separately).
SAC does not spread: its 256-wide matmuls already keep both cores busy in one program, and
spreading its critic and actor gradients measured slower (151 vs 180 updates/s, on the
project's first AVX-512 host). The agent writes the parts as one function
``fn(names) -> {name: result}`` and calls :func:`spread`; run on one device (or under ``vmap``) that is just ``fn(all names)``, while a run spread
over a ``'parts'`` mesh axis computes each part on its own device and exchanges the results
with one all-reduce.
Everything else (rollouts, targets, evaluation) runs replicated on every device.

``use_all_cpu_cores()`` must run before jax initialises its backends; the CLI calls it
first thing. If jax is already up it changes nothing and the runs go wherever
``jax.devices()`` says.
``compile_faster()`` (also called by the CLI before jax starts) lowers XLA's backend
optimisation level on CPU-only installs: shorter compiles, the same numbers.
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
    if count is None:
        count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    count = int(count)
    return count if count > 1 and _add_xla_flag(_FLAG, count) else 0


def _add_xla_flag(flag: str, value) -> bool:
    """Append ``flag=value`` to XLA_FLAGS unless the flag is there already or jax is running."""
    flags = os.environ.get("XLA_FLAGS", "")
    if flag in flags or _backends_initialised():
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {flag}={value}".strip()
    return True


_OPT_LEVEL_FLAG = "--xla_backend_optimization_level"


def compile_faster(level: int = 1) -> bool:
    """Lower XLA's backend optimisation level (default 3) to ``level`` for CPU-only installs.

    Returns whether it changed anything. It does not when the user set a level in XLA_FLAGS,
    when jax is already running, or when an accelerator plugin (CUDA/ROCm under jax_plugins,
    or libtpu) is installed, since there the level also shapes the accelerator's kernels.

    Why: rlx's CPU programs spend their time in the matmul library's kernels and in long
    scans of small ops, which LLVM's heavier passes do little for, while those passes are a
    good part of every compile. Measured on the AMD EPYC AVX-512 host, jaxlib 0.10.2, fresh
    processes in alternating order (experiments/bench/ab_xla_opt_level.py): the PPO CartPole
    bench program with 1 seed spread compiled in a median 4.84 s instead of 5.42 s (faster in
    6 of 6 rounds; experiments/results/xla_opt_level_ppo_1_seed.json), with 8 seeds in 6.96 s
    instead of 7.85 s (3 rounds; xla_opt_level.json); the run rates and final returns were the
    same within noise and bitwise respectively. SAC's 256×256 program gained nothing (6.96 vs
    6.85 s) and ran as fast.
    """
    import importlib.util

    if any(importlib.util.find_spec(name) is not None for name in ("jax_plugins", "libtpu")):
        return False
    return _add_xla_flag(_OPT_LEVEL_FLAG, int(level))


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


PARTS = "parts"  # the mesh axis one run's independent parts are spread over


def _axis_size(name: str) -> int:
    import jax

    try:
        return int(jax.lax.axis_size(name))
    except NameError:  # not inside a program mapped over that axis
        return 0


def spread(fn, names):
    """``fn(names)``, each independent part on its own device when the run is spread over 'parts'.

    ``fn(subset)`` returns ``{name: result}`` for the names in ``subset``, and a part's result
    must not depend on which other parts are computed with it (the caller's promise: separate
    parameters, separate losses). Outside a program mapped over the ``'parts'`` axis this is
    ``fn(tuple(names))``. Inside one of n devices (``RunsMesh`` with one run and ``parts > 1``),
    device i computes ``names[i::n]`` and one all-reduce per dtype hands every result to every
    device. The exchange adds zeros, so the numbers are those of ``fn(names)``.
    """
    import jax
    import jax.numpy as jnp

    names = tuple(names)
    n = _axis_size(PARTS)
    if n <= 1:
        return fn(names)
    shapes = {name: jax.eval_shape(lambda: fn((name,))[name]) for name in names}

    def branch(group):
        def run():
            out = fn(group) if group else {}
            return {name: out[name] if name in group else
                    jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes[name]) for name in names}
        return run

    results = jax.lax.switch(jax.lax.axis_index(PARTS), [branch(names[i::n]) for i in range(n)])
    return psum_exact(results, PARTS)


def psum_exact(tree, axis: str):
    """``lax.psum`` of a pytree as one all-reduce per dtype (each one costs a device rendezvous).

    The leaves travel packed (:mod:`rlx.packing`), booleans as int32. Meant for trees where at
    most one device holds a nonzero value per leaf, so the sum is exact; typed PRNG keys cannot
    be summed and raise.
    """
    import jax
    import jax.numpy as jnp

    from rlx import packing

    is_bool = lambda x: jnp.asarray(x).dtype == jnp.bool_
    wire = jax.tree.map(lambda x: jnp.asarray(x, jnp.int32) if is_bool(x) else jnp.asarray(x), tree)
    pack, unpack = packing.packer(wire)
    summed = unpack({dtype: jax.lax.psum(buffer, axis) for dtype, buffer in pack(wire).items()})
    return jax.tree.map(lambda s, x: s.astype(jnp.bool_) if is_bool(x) else s, summed, tree)


class RunsMesh:
    """A 1-D mesh ('runs',) over every device (of every process, after ``jax.distributed.initialize``).

    ``put`` pads a batch of runs to a multiple of the device count (repeating run 0) and shards
    its leading axis; ``replicate`` copies an argument to every device; ``get`` returns the
    unpadded batch as host numpy arrays, gathering shards from other processes when needed.
    Each run's computation is the same as unsharded, so results agree with ``jax.jit``.

    One run of an agent with ``parts > 1`` (see :func:`spread`) instead gets a ('parts',) mesh
    over up to ``parts`` devices: every input and output is replicated, and ``jit`` maps the
    program over the devices with ``shard_map`` so that each computes its own parts.
    """

    def __init__(self, runs: int, devices=None, parts: int = 1):
        import jax
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        devices = list(jax.devices() if devices is None else devices)
        self.spread = int(runs) == 1 and int(parts) > 1 and len(devices) > 1 and jax.process_count() == 1
        if self.spread:
            devices = devices[: int(parts)]
        elif jax.process_count() == 1:
            devices = devices[: max(1, runs)]  # never more devices than runs
        self.runs, self.devices = int(runs), devices
        self.padded = -(-self.runs // len(devices)) * len(devices) if not self.spread else self.runs
        self.mesh = Mesh(np.asarray(devices), (PARTS if self.spread else "runs",))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        self.sharding = self.replicated if self.spread else NamedSharding(self.mesh, PartitionSpec("runs"))

    def _global(self, x, sharding):
        import jax

        if isinstance(x, jax.Array) and x.sharding == sharding:
            return x
        if jax.process_count() == 1:
            return jax.device_put(x, sharding)
        x = np.asarray(x)  # every process holds the whole (small) input; each keeps its shards
        return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

    def put(self, tree):
        import jax

        def one(x):
            if isinstance(x, jax.Array) and x.sharding == self.sharding and x.shape[0] == self.padded:
                return x
            x = np.asarray(x)
            if self.padded != self.runs:
                x = np.concatenate([x, np.repeat(x[:1], self.padded - self.runs, axis=0)])
            return self._global(x, self.sharding)

        return jax.tree.map(one, tree)

    def replicate(self, tree):
        import jax

        return jax.tree.map(lambda x: self._global(np.asarray(x), self.replicated), tree)

    def get(self, tree):
        """Host numpy copy of the first ``runs`` entries (gathered from every process)."""
        import jax

        def one(x):
            if isinstance(x, jax.Array) and not x.is_fully_addressable:
                from jax.experimental import multihost_utils

                x = multihost_utils.process_allgather(x, tiled=True)
            return np.asarray(x)[: self.runs]

        return jax.tree.map(one, tree)

    def jit(self, fn, static_argnums=(), donate_argnums=()):
        """``jax.jit`` with every output sharded over runs (inputs carry their own shardings).

        On a ('parts',) mesh the function runs under ``shard_map`` with everything replicated
        (static arguments stay outside it).
        """
        import jax
        from jax.sharding import PartitionSpec

        if self.spread:
            inner, statics = fn, (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)

            def fn(*args):
                dynamic = [i for i in range(len(args)) if i not in statics]

                def body(*dyn):
                    full = list(args)
                    for i, x in zip(dynamic, dyn):
                        full[i] = x
                    return inner(*full)

                # check_vma=False: results are replicated by construction (psum_exact), which
                # the varying-axes check cannot see through lax.switch on the device index.
                return jax.shard_map(body, mesh=self.mesh, in_specs=PartitionSpec(), out_specs=PartitionSpec(),
                                     check_vma=False)(*[args[i] for i in dynamic])

        return jax.jit(fn, out_shardings=self.sharding, static_argnums=static_argnums, donate_argnums=donate_argnums)


def vmap_runs(fn, runs: int, in_axes=0):
    """``jax.vmap(fn, in_axes)`` over a leading runs axis, except that one run calls ``fn`` itself.

    Same inputs and outputs either way (a leading runs axis of size ``runs``), and the same
    numbers: run i of a batch equals the single run. Why special-case one run: a vmapped batch
    of one traces, compiles and runs slower on a CPU than the plain program (PPO CartPole:
    trace 1.1 vs 0.5 s, XLA 4.7 vs 4.3 s, run 3.15 vs 3.06 s). ``in_axes``: 0 or None, or a
    tuple of them, one per positional argument.
    """
    import jax

    if runs != 1:
        return jax.vmap(fn, in_axes=in_axes)
    per_arg = isinstance(in_axes, (tuple, list))
    if any(a not in (0, None) for a in (in_axes if per_arg else (in_axes,))):
        raise ValueError(f"vmap_runs: in_axes must be 0, None or one of them per argument, got {in_axes!r}")

    def one(*args):
        axes = in_axes if per_arg else (in_axes,) * len(args)
        if len(axes) != len(args):
            raise ValueError(f"vmap_runs: in_axes has {len(axes)} entries for {len(args)} arguments: {in_axes!r}")
        args = [x if ax is None else jax.tree.map(lambda v: v[0], x) for x, ax in zip(args, axes)]
        return jax.tree.map(lambda v: jax.numpy.asarray(v)[None], fn(*args))

    return one


def shard_runs(fn, runs: int, parts: int = 1):
    """jit ``fn`` (already vmapped over a leading runs axis of every argument) with that axis
    sharded over all devices (one run of an agent with ``parts > 1``: spread over up to
    ``parts`` devices, see :class:`RunsMesh`).

    The runs axis is padded to a multiple of the device count by repeating run 0; the
    returned function takes and returns unpadded pytrees. Each run's computation is the
    same as unsharded, so results agree with ``jax.jit(fn)``.

    Returns ``(call, devices)`` where ``call(*args)`` returns ``fn``'s output, and ``call.lower``
    compiles ahead of time (``call.compile(*args)``).
    """
    mesh = RunsMesh(runs, parts=parts)
    jitted = mesh.jit(fn)

    class Call:
        compiled = None

        def compile(self, *args):
            self.compiled = jitted.lower(*mesh.put(args)).compile()
            return self

        def __call__(self, *args):
            fn_ = self.compiled or jitted
            return mesh.get(fn_(*mesh.put(args)))

    return Call(), mesh.devices

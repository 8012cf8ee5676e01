"""Dense-matmul FLOP/s ceiling of this CPU, measured with JAX (uses only jax).

A jitted lax.fori_loop applies x <- x @ W `iters` times, x [batch, width],
W [width, width] (float32). W is orthogonal, so x keeps its norm: no overflow,
underflow or denormals slow the chain down. Each step costs 2*batch*width*width
FLOPs (counted analytically); the count is cross-checked against XLA's
cost_analysis() of one step (XLA counts a loop body once, not per iteration).

    .venv/bin/python experiments/bench/matmul_ceiling.py            # prints JSON
    python -c "from experiments.bench.matmul_ceiling import measure; print(measure())"
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import time

import jax
import jax.numpy as jnp


def _cost_flops(compiled):
    try:
        ca = compiled.cost_analysis()
    except Exception:  # noqa: BLE001
        return None
    if isinstance(ca, (list, tuple)):
        ca = ca[0] if ca else None
    if not ca or ca.get("flops") is None:
        return None
    return float(ca["flops"])


def cpu_description() -> str:
    """'<model name>, <cores> cores, <widest vector ISA>' from /proc/cpuinfo, e.g. to label a results table.

    The VMs here change host between sessions (AMD EPYC with AVX2, Intel Xeon with AVX-512 and AMX),
    and the matmul ceiling and every rate move with it, so each results file names its machine.
    """
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return f"unknown CPU, {os.cpu_count()} cores"
    model = re.search(r"^model name\s*:\s*(.+)$", info, re.M)
    flags_line = re.search(r"^flags\s*:\s*(.+)$", info, re.M)
    flags = set(flags_line.group(1).split()) if flags_line else set()
    isa = [name for flag, name in (("avx2", "AVX2"), ("avx512f", "AVX-512"), ("amx_tile", "AMX")) if flag in flags]
    return f"{model.group(1).strip() if model else 'unknown CPU'}, {os.cpu_count()} cores, {'/'.join(isa) or 'no AVX2'}"


def measure(repeats: int = 5, batch: int = 4096, width: int = 256,
            iters: int = 200, seed: int = 0) -> dict:
    """Time `iters` chained [batch,width]@[width,width] matmuls; return GFLOP/s."""
    kx, kw = jax.random.split(jax.random.PRNGKey(seed))
    x0 = jax.random.normal(kx, (batch, width), jnp.float32)
    w, _ = jnp.linalg.qr(jax.random.normal(kw, (width, width), jnp.float32))

    def chain(x, w):
        return jax.lax.fori_loop(0, iters, lambda _, x: x @ w, x)

    def one(x, w):
        return x @ w

    load_before = os.getloadavg()
    t = time.perf_counter()
    compiled = jax.jit(chain).lower(x0, w).compile()
    compile_s = time.perf_counter() - t
    step_flops_xla = _cost_flops(jax.jit(one).lower(x0, w).compile())
    chain_flops_xla = _cost_flops(compiled)

    flops_per_step = 2 * batch * width * width
    total_flops = flops_per_step * iters

    jax.block_until_ready(compiled(x0, w))  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = compiled(x0, w)
        out.block_until_ready()
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    load_after = os.getloadavg()

    return {
        "gflops_per_s": total_flops / med / 1e9,
        "gflops_per_s_best": total_flops / min(times) / 1e9,
        "run_s": times,
        "run_s_median": med,
        "compile_s": compile_s,
        "batch": batch,
        "width": width,
        "iters": iters,
        "flops_per_matmul": flops_per_step,
        "flops_total": total_flops,
        "xla_flops_one_matmul": step_flops_xla,
        "xla_flops_loop": chain_flops_xla,
        "xla_matches_analytic": (step_flops_xla is not None
                                 and abs(step_flops_xla - flops_per_step)
                                 <= 0.01 * flops_per_step),
        "finite": bool(jnp.all(jnp.isfinite(out))),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "cpu_count": os.cpu_count(),
        "cpu": cpu_description(),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--iters", type=int, default=200)
    p.add_argument("--out", default=None, help="also write the JSON here")
    a = p.parse_args(argv)
    res = measure(a.repeats, a.batch, a.width, a.iters)
    s = json.dumps(res, indent=2)
    print(s)
    if a.out:
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out, "w") as f:
            f.write(s + "\n")
    return res


if __name__ == "__main__":
    main()

"""Time the test suite as CI runs it, and how much of it is jax compilation.

    .venv/bin/python experiments/bench/suite_time.py --out experiments/results/test_suite_time.json

Runs the README's test command (the Makefile's ``test`` recipe, read from it) with a cold, empty
compilation cache (CI starts from a fresh machine; ``--warm`` keeps the one tests/conftest.py
uses, which is what a second local run sees) and the suite_compile_stats plugin, then writes the
wall time, the summed per-test time and its compile share, per file and for the slowest tests.
"""
from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from matmul_ceiling import cpu_description

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def test_command_args() -> list[str]:
    """pytest's arguments in the Makefile's ``test`` recipe, so this runs what ``make test`` runs."""
    lines = open(os.path.join(ROOT, "Makefile")).read().splitlines()
    recipe = lines[lines.index(next(line for line in lines if line.startswith("test:"))) + 1]
    return [a for a in recipe.split("-m pytest", 1)[1].split() if not a.startswith("--durations")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--warm", action="store_true", help="reuse the tests' persistent compilation cache")
    ap.add_argument("pytest_args", nargs="*", help="extra arguments for pytest")
    args = ap.parse_args()
    stats_dir = tempfile.mkdtemp(prefix="rlx-suite-stats-")
    env = {**os.environ, "RLX_SUITE_STATS_DIR": stats_dir,
           "PYTHONPATH": os.pathsep.join(filter(None, [HERE, os.environ.get("PYTHONPATH")]))}
    if not args.warm:
        env["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="rlx-suite-cold-cache-")
    cmd = [sys.executable, "-m", "pytest", *test_command_args(), "-p", "suite_compile_stats", *args.pytest_args]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    tail = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-500:]
    rows = [json.loads(line) for path in glob.glob(os.path.join(stats_dir, "*.jsonl")) for line in open(path)]
    compile_of = lambda r: r.get("backend_compile_duration", 0.0)
    trace_of = lambda r: r.get("jaxpr_trace_duration", 0.0) + r.get("jaxpr_to_mlir_module_duration", 0.0)
    per_file = collections.defaultdict(lambda: {"tests": 0, "wall_s": 0.0, "xla_compile_s": 0.0, "trace_lower_s": 0.0})
    for r in rows:
        f = per_file[r["test"].split("::")[0]]
        f["tests"] += 1
        f["wall_s"] += r["wall_s"]
        f["xla_compile_s"] += compile_of(r)
        f["trace_lower_s"] += trace_of(r)
    total = sum(r["wall_s"] for r in rows)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    out = {
        "commit": commit.strip() + ("+changes" if dirty else ""), "command": " ".join(cmd[1:]),
        "cache": "warm" if args.warm else "cold", "returncode": proc.returncode,
        "result": tail, "wall_s": wall, "tests": len(rows), "sum_of_test_s": total,
        "xla_compile_s": sum(map(compile_of, rows)), "trace_lower_s": sum(map(trace_of, rows)),
        "compile_share": (sum(map(compile_of, rows)) + sum(map(trace_of, rows))) / max(total, 1e-9),
        "per_file": dict(sorted(per_file.items(), key=lambda kv: -kv[1]["wall_s"])),
        "slowest": [{"test": r["test"], "wall_s": round(r["wall_s"], 1), "xla_compile_s": round(compile_of(r), 1)}
                    for r in sorted(rows, key=lambda r: -r["wall_s"])[:20]],
        "cpu_count": os.cpu_count(), "cpu": cpu_description(), "loadavg_after": os.getloadavg(),
        # tests/conftest.py adds its compile flag for the jaxlib in use unless these name it.
        "xla_flags_given": os.environ.get("XLA_FLAGS", ""),
    }
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
    shutil.rmtree(stats_dir, ignore_errors=True)
    if not args.warm:
        shutil.rmtree(env["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
    print(f"{tail}\nwall {wall:.0f} s; tests sum {total:.0f} s, of it XLA compile {out['xla_compile_s']:.0f} s "
          f"and tracing/lowering {out['trace_lower_s']:.0f} s ({100 * out['compile_share']:.0f}%)")
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()

"""A/B of XLA's backend optimisation level: 3 (XLA's default) against 1 (what ``rlx train`` sets).

    .venv/bin/python experiments/bench/ab_xla_opt_level.py              # 3 rounds, ~8 min
    .venv/bin/python experiments/bench/ab_xla_opt_level.py --rounds 6 --settings ppo_1_seed

Runs the benchmarks' own programs (bench_ppo.py, bench_sac.py), each in a fresh process with no
compilation cache. "level1" leaves XLA_FLAGS unset, so the bench script's
``rlx.parallel.compile_faster()`` sets level 1 as the CLI does; "level3" passes
``--xla_backend_optimization_level=3`` in XLA_FLAGS, which compile_faster leaves alone.
Settings: PPO CartPole 500k steps with 1 seed spread over the cores and with 8 seeds, and SAC
Pendulum 256×256 for 5k steps (4k updates) on one device. Rounds interleave the variants in
alternating order. Both levels must give the same final returns. Writes
experiments/results/xla_opt_level.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

import ab_rounds  # beside this script

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
VARIANTS = ("level3", "level1")
SETTINGS = {
    "ppo_1_seed": ["bench_ppo.py", "--seeds", "1", "--devices", "all", "--repeats", "3"],
    "ppo_8_seeds": ["bench_ppo.py", "--seeds", "8", "--devices", "all", "--repeats", "2"],
    "sac_1_seed": ["bench_sac.py", "--seeds", "1", "--devices", "1", "--steps", "5000", "--repeats", "1"],
}


def measure(variant: str, setting: str) -> dict:
    """One bench run of ``setting`` at the variant's level: compile seconds, rate, final return."""
    env = dict(os.environ)
    if variant == "level3":
        env["XLA_FLAGS"] = "--xla_backend_optimization_level=3"
    script, *flags = SETTINGS[setting]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.json")
        subprocess.run([sys.executable, os.path.join(HERE, script), *flags, "--out", out], cwd=ROOT, env=env,
                       check=True, capture_output=True)
        with open(out) as f:
            result = json.load(f)
    return {"variant": variant, "setting": setting, "compile_s": result["compile_s"],
            "env_steps_per_s": result["env_steps_per_s"], "final_return_median": result["final_return_median"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(ROOT, "experiments", "results", "xla_opt_level.json"))
    ap.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    ap.add_argument("--one", nargs=2, metavar=("VARIANT", "SETTING"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one)))
        return

    rows = ab_rounds.interleaved(os.path.abspath(__file__), VARIANTS, args.settings, args.rounds)
    summary = {}
    for setting in args.settings:
        by = {v: [r for r in rows if r["setting"] == setting and r["variant"] == v] for v in VARIANTS}
        med = {v: {k: statistics.median(r[k] for r in by[v]) for k in ("compile_s", "env_steps_per_s")}
               for v in VARIANTS}
        returns = {v: sorted({r["final_return_median"] for r in by[v]}) for v in VARIANTS}
        summary[setting] = {
            "median": med,
            "compile_s_saved": med["level3"]["compile_s"] - med["level1"]["compile_s"],
            "rate_ratio_level1_over_level3": med["level1"]["env_steps_per_s"] / med["level3"]["env_steps_per_s"],
            "final_returns": returns, "same_final_returns": returns["level1"] == returns["level3"]}
        print(f"{setting:12s} compile {med['level3']['compile_s']:.2f} -> {med['level1']['compile_s']:.2f} s, "
              f"rate x{summary[setting]['rate_ratio_level1_over_level3']:.3f}, "
              f"same returns: {summary[setting]['same_final_returns']}")
    with open(args.out, "w") as f:
        json.dump({"rounds": args.rounds, "cpu": platform.processor() or platform.machine(),
                   "cpu_count": os.cpu_count(), "summary": summary, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()

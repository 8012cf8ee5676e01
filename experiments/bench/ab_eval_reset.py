"""A/B of evaluation with and without resets: compile seconds of the PPO CartPole bench program.

    .venv/bin/python experiments/bench/ab_eval_reset.py              # 3 rounds, ~3 min
    .venv/bin/python experiments/bench/ab_eval_reset.py --rounds 5

``rlx.run.evaluate`` counts each env's first episode only, and steps its envs with
``VecEnv.step_without_reset``; the "reset" variant puts ``VecEnv.step`` back (a reset drawn at
every step, as before). Programs: the benchmark's 1-seed run (bench_ppo.py: 500k steps, one
evaluation of 128 episodes at the end) on one XLA device, and spread over one host device per
core (what ``rlx train ppo --seeds 1`` runs). Each measurement is a fresh process with no
compilation cache; rounds interleave the variants, in alternating order. Both variants must give the same evaluation
returns, bitwise. Writes experiments/results/ab_eval_reset.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics

import ab_rounds  # beside this script

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VARIANTS = ("reset", "no_reset")
PROGRAMS = ("1_device", "spread")


def measure(variant: str, program: str) -> dict:
    """Compile seconds (trace + lower + XLA) of one program, and its evaluation returns."""
    from rlx.parallel import use_all_cpu_cores
    if program == "spread":
        use_all_cpu_cores()
    import numpy as np

    from rlx import envs

    if variant == "reset":
        envs.VecEnv.step_without_reset = envs.VecEnv.step
    _, call, args, devices, compile_s = ab_rounds.compile_ppo_cartpole_one_seed(500_000, eval_episodes=128)
    _, metrics = call(*args)
    return {"variant": variant, "program": program, "devices": len(devices), "compile_s": compile_s,
            "eval_return": np.asarray(metrics["eval/return"]).ravel().tolist()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(ROOT, "experiments", "results", "ab_eval_reset.json"))
    ap.add_argument("--one", nargs=2, metavar=("VARIANT", "PROGRAM"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one)))
        return
    rows = ab_rounds.interleaved(__file__, VARIANTS, PROGRAMS, args.rounds)
    summary = {}
    for program in PROGRAMS:
        by = {v: [x for x in rows if x["program"] == program and x["variant"] == v] for v in VARIANTS}
        same = all(a["eval_return"] == b["eval_return"] for a, b in zip(by["reset"], by["no_reset"]))
        summary[program] = {f"compile_s_median_{v}": statistics.median(x["compile_s"] for x in by[v]) for v in VARIANTS}
        summary[program]["same_eval_returns_bitwise"] = same
    out = {"rounds": args.rounds, "summary": summary, "rows": rows, "cpu_count": os.cpu_count()}
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

"""PPO CartPole-v1: rlx against rejax and Stable-Baselines3, in one run, one after another.

    bash experiments/bench/run.sh           # sets up the anchor venvs, then runs this

Writes experiments/results/bench_ppo_cartpole.json (every measurement, plus the ratios) and
experiments/results/bench_ppo_cartpole.md (the README's performance table). Each entry is
its own process, so no run warms up another's caches; they run one at a time so none
competes for the 2 cores.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
RAW = os.path.join(ROOT, "experiments", "results", "bench_ppo")
REJAX = os.path.join(HERE, ".venv-rejax", "bin", "python")
SB3 = os.path.join(HERE, ".venv-sb3", "bin", "python")
MAIN = sys.executable


def run(name, cmd):
    out = os.path.join(RAW, name + ".json")
    print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
    subprocess.run(cmd + ["--out", out], check=True, cwd=ROOT)
    with open(out) as f:
        return json.load(f)


def main():
    os.makedirs(RAW, exist_ok=True)
    steps = os.environ.get("SB3_STEPS", "100000")
    results = {
        "ceiling": run("matmul_ceiling", [MAIN, f"{HERE}/matmul_ceiling.py"]),
        "rlx_s1": run("rlx_s1", [MAIN, f"{HERE}/bench_ppo.py", "--seeds", "1", "--devices", "1"]),
        "rlx_s8_1dev": run("rlx_s8_1dev", [MAIN, f"{HERE}/bench_ppo.py", "--seeds", "8", "--devices", "1"]),
        "rlx_s8": run("rlx_s8", [MAIN, f"{HERE}/bench_ppo.py", "--seeds", "8", "--devices", "all"]),
        "rejax_s1": run("rejax_s1", [REJAX, f"{HERE}/anchor_rejax.py", "--algo", "ppo", "--seeds", "1"]),
        "rejax_s8": run("rejax_s8", [REJAX, f"{HERE}/anchor_rejax.py", "--algo", "ppo", "--seeds", "8"]),
        "sb3_4envs": run("sb3_4envs", [SB3, f"{HERE}/anchor_sb3.py", "--algo", "ppo", "--envs", "4", "--steps", steps]),
        "sb3_16envs": run("sb3_16envs", [SB3, f"{HERE}/anchor_sb3.py", "--algo", "ppo", "--envs", "16",
                                         "--steps", steps]),
    }
    ceiling = results["ceiling"]["gflops_per_s"]
    flops = results["rlx_s1"]["xla_flops_per_env_step"]
    rows = [
        ("rlx", "1 seed", results["rlx_s1"]),
        ("rejax", "1 seed", results["rejax_s1"]),
        ("rlx", "8 seeds, 1 XLA device", results["rlx_s8_1dev"]),
        ("rlx (default: 1 device per core)", "8 seeds, 2 devices", results["rlx_s8"]),
        ("rejax", "8 seeds vmapped", results["rejax_s8"]),
        ("Stable-Baselines3", f"4 envs, {int(steps) // 1000}k steps", results["sb3_4envs"]),
        ("Stable-Baselines3", f"16 envs, {int(steps) // 1000}k steps", results["sb3_16envs"]),
    ]
    summary = {
        "matmul_ceiling_gflops": ceiling,
        "xla_flops_per_env_step": flops,
        "ratio_1seed_vs_rejax": results["rlx_s1"]["env_steps_per_s"] / results["rejax_s1"]["env_steps_per_s"],
        "ratio_8seeds_vs_rejax": results["rlx_s8"]["env_steps_per_s"] / results["rejax_s8"]["env_steps_per_s"],
        "ratio_8seeds_1dev_vs_rejax": results["rlx_s8_1dev"]["env_steps_per_s"] / results["rejax_s8"]["env_steps_per_s"],
        "rows": [{"framework": f, "setting": s, "env_steps_per_s": r["env_steps_per_s"], "compile_s": r["compile_s"],
                  "final_return_median": _median(r["final_return"]),
                  "flop_utilisation": flops * r["env_steps_per_s"] / (ceiling * 1e9)} for f, s, r in rows],
        "raw": results,
    }
    with open(os.path.join(ROOT, "experiments", "results", "bench_ppo_cartpole.json"), "w") as f:
        json.dump(summary, f, indent=2)
    lines = ["| framework | setting | env-steps/s | compile s | final return (median) | FLOP utilisation |",
             "|---|---|---:|---:|---:|---:|"]
    for r in summary["rows"]:
        lines.append(f"| {r['framework']} | {r['setting']} | {r['env_steps_per_s']:,.0f} | {r['compile_s']:.1f} | "
                     f"{r['final_return_median']:.0f} | {100 * r['flop_utilisation']:.1f}% |")
    lines.append("")
    lines.append(f"Ratios: rlx/rejax 1 seed {summary['ratio_1seed_vs_rejax']:.2f}×, 8 seeds "
                 f"{summary['ratio_8seeds_vs_rejax']:.2f}× (default layout) and "
                 f"{summary['ratio_8seeds_1dev_vs_rejax']:.2f}× (one XLA device). FLOP utilisation = XLA-counted "
                 f"{flops / 1e6:.3f} MFLOP per env step × env-steps/s ÷ the {ceiling:.0f} GFLOP/s dense-matmul "
                 f"ceiling measured in the same run (same FLOP count per step applied to every framework).")
    with open(os.path.join(ROOT, "experiments", "results", "bench_ppo_cartpole.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def _median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


if __name__ == "__main__":
    main()

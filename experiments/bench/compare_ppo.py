"""PPO CartPole-v1: rlx against rejax and Stable-Baselines3, in one run.

    bash experiments/bench/run.sh           # sets up the anchor venvs, then runs this
    ROUNDS=5 bash experiments/bench/run.sh  # more rounds on a noisy machine

Writes experiments/results/bench_ppo_cartpole.json (every measurement, plus the ratios) and
experiments/results/bench_ppo_cartpole.md (the README's performance table). Each measurement is
its own process, so no run warms up another's caches, and they run one at a time so none
competes for the 2 cores. This VM's speed drifts by ±25% over minutes, so the JAX entries run in
``ROUNDS`` interleaved rounds (rlx, rejax, rlx, rejax, ...): each row reports the median over
rounds of each process's median run, and the ratios compare medians taken over the same minutes.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
RAW = os.path.join(ROOT, "experiments", "results", "bench_ppo")
REJAX = os.path.join(HERE, ".venv-rejax", "bin", "python")
SB3 = os.path.join(HERE, ".venv-sb3", "bin", "python")
MAIN = sys.executable

# name: (label, setting, command). "1 seed, 2 devices" is what `rlx train --seeds 1` does on a
# 2-core CPU: the run's actor and critic fits on separate cores (rlx.parallel.spread).
JAX_ENTRIES = {
    "rlx_s1": ("rlx (default: one run over 2 devices)", "1 seed", [MAIN, f"{HERE}/bench_ppo.py", "--seeds", "1", "--devices", "all"]),
    "rlx_s1_1dev": ("rlx", "1 seed, 1 XLA device", [MAIN, f"{HERE}/bench_ppo.py", "--seeds", "1", "--devices", "1"]),
    "rejax_s1": ("rejax", "1 seed", [REJAX, f"{HERE}/anchor_rejax.py", "--algo", "ppo", "--seeds", "1"]),
    "rlx_s8": ("rlx (default: 1 device per core)", "8 seeds", [MAIN, f"{HERE}/bench_ppo.py", "--seeds", "8", "--devices", "all"]),
    "rlx_s8_1dev": ("rlx", "8 seeds, 1 XLA device", [MAIN, f"{HERE}/bench_ppo.py", "--seeds", "8", "--devices", "1"]),
    "rejax_s8": ("rejax", "8 seeds vmapped", [REJAX, f"{HERE}/anchor_rejax.py", "--algo", "ppo", "--seeds", "8"]),
}


def run(name, cmd):
    out = os.path.join(RAW, name + ".json")
    print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
    subprocess.run(cmd + ["--out", out], check=True, cwd=ROOT)
    with open(out) as f:
        return json.load(f)


def main():
    os.makedirs(RAW, exist_ok=True)
    rounds = int(os.environ.get("ROUNDS", "3"))
    steps = os.environ.get("SB3_STEPS", "100000")
    ceiling = run("matmul_ceiling", [MAIN, f"{HERE}/matmul_ceiling.py"])
    per_round = {name: [] for name in JAX_ENTRIES}
    for r in range(rounds):
        for name, (_, _, cmd) in JAX_ENTRIES.items():
            per_round[name].append(run(f"{name}_round{r}", cmd))
    sb3 = {"sb3_4envs": run("sb3_4envs", [SB3, f"{HERE}/anchor_sb3.py", "--algo", "ppo", "--envs", "4", "--steps", steps]),
           "sb3_16envs": run("sb3_16envs", [SB3, f"{HERE}/anchor_sb3.py", "--algo", "ppo", "--envs", "16",
                                            "--steps", steps])}

    def summary_of(results):
        rate = statistics.median(r["env_steps_per_s"] for r in results)
        return {"env_steps_per_s": rate, "env_steps_per_s_rounds": [r["env_steps_per_s"] for r in results],
                "compile_s": statistics.median(r["compile_s"] for r in results),
                "final_return_median": statistics.median(_median(r["final_return"]) for r in results)}

    med = {name: summary_of(res) for name, res in per_round.items()}
    med.update({name: summary_of([res]) for name, res in sb3.items()})
    flops = per_round["rlx_s1"][0]["xla_flops_per_env_step"]
    ceiling_gflops = ceiling["gflops_per_s"]
    rows = [(label, setting, med[name]) for name, (label, setting, _) in JAX_ENTRIES.items()]
    rows += [("Stable-Baselines3", f"4 envs, {int(steps) // 1000}k steps", med["sb3_4envs"]),
             ("Stable-Baselines3", f"16 envs, {int(steps) // 1000}k steps", med["sb3_16envs"])]
    ratio = lambda a, b: med[a]["env_steps_per_s"] / med[b]["env_steps_per_s"]
    summary = {
        "rounds": rounds,
        "matmul_ceiling_gflops": ceiling_gflops,
        "xla_flops_per_env_step": flops,
        "ratio_1seed_vs_rejax": ratio("rlx_s1", "rejax_s1"),
        "ratio_1seed_1dev_vs_rejax": ratio("rlx_s1_1dev", "rejax_s1"),
        "ratio_8seeds_vs_rejax": ratio("rlx_s8", "rejax_s8"),
        "ratio_8seeds_1dev_vs_rejax": ratio("rlx_s8_1dev", "rejax_s8"),
        "rows": [{"framework": f, "setting": s, **r,
                  "flop_utilisation": flops * r["env_steps_per_s"] / (ceiling_gflops * 1e9)} for f, s, r in rows],
        "raw": {"ceiling": ceiling, **per_round, **sb3},
    }
    with open(os.path.join(ROOT, "experiments", "results", "bench_ppo_cartpole.json"), "w") as f:
        json.dump(summary, f, indent=2)
    lines = ["| framework | setting | env-steps/s | compile s | final return (median) | FLOP utilisation |",
             "|---|---|---:|---:|---:|---:|"]
    for r in summary["rows"]:
        lines.append(f"| {r['framework']} | {r['setting']} | {r['env_steps_per_s']:,.0f} | {r['compile_s']:.1f} | "
                     f"{r['final_return_median']:.0f} | {100 * r['flop_utilisation']:.1f}% |")
    lines.append("")
    lines.append(f"Machine: {ceiling.get('cpu', 'not recorded')}. Medians over {rounds} interleaved rounds. Ratios rlx/rejax: 1 seed "
                 f"{summary['ratio_1seed_vs_rejax']:.2f}× (default, 2 devices) and "
                 f"{summary['ratio_1seed_1dev_vs_rejax']:.2f}× (one XLA device); 8 seeds "
                 f"{summary['ratio_8seeds_vs_rejax']:.2f}× (default layout) and "
                 f"{summary['ratio_8seeds_1dev_vs_rejax']:.2f}× (one XLA device). FLOP utilisation = XLA-counted "
                 f"{flops / 1e6:.3f} MFLOP per env step × env-steps/s ÷ the {ceiling_gflops:.0f} GFLOP/s dense-matmul "
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

"""A/B of run_population's compile: the init program beside the first chunk, or before it.

    .venv/bin/python experiments/bench/ab_concurrent_init.py              # 4 rounds, ~6 min
    .venv/bin/python experiments/bench/ab_concurrent_init.py --rounds 6

``rlx.run.run_population`` (what ``rlx train`` runs) compiles two programs: the init (networks,
optimiser, env reset) and the chunk that advances the run. It compiles the init on a helper
thread while the main thread traces and compiles the chunk. The "one_after_other" variant makes
that helper run its job at once, on the calling thread (the order before), which also times the
init's compile alone. Workload: the PPO CartPole benchmark's configuration (500k steps, one
evaluation of 128 episodes at the end) in ``rlx train``'s default layout (one host device per
core): 1 seed spread over the devices, and 8 seeds sharded over them. Each measurement is a fresh
process with no compilation cache; rounds interleave the variants in alternating order. Both
variants must give the same evaluation returns, bitwise. Writes
experiments/results/ab_concurrent_init.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import ab_rounds  # beside this script

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VARIANTS = ("one_after_other", "side_by_side")
SEEDS = (1, 8)


def measure(variant: str, seeds: int) -> dict:
    """run_population's compile seconds (init + first chunk) and the evaluation returns."""
    from rlx.parallel import use_all_cpu_cores
    use_all_cpu_cores()
    import concurrent.futures

    import jax
    import numpy as np

    from rlx import envs
    from rlx.agents import ppo
    from rlx.run import run_population

    timed = {}
    if variant == "one_after_other":
        class AtOnce:  # an executor that runs each job when it is submitted
            def __init__(self, *_):
                pass

            def __enter__(self):
                return self

            def __exit__(self, *_):
                return False

            def submit(self, fn):
                t0 = time.perf_counter()
                future = concurrent.futures.Future()
                future.set_result(fn())
                timed["init_compile_s"] = time.perf_counter() - t0
                return future

        concurrent.futures.ThreadPoolExecutor = AtOnce  # run_population imports it when called
    env, env_params = envs.make("CartPole-v1")
    agent = ppo.make(ppo.PPOConfig(total_timesteps=500_000), env, env_params)
    hp = jax.tree.map(lambda x: np.broadcast_to(x, (seeds,) + np.shape(x)), agent.default_hparams())
    keys = jax.random.split(jax.random.PRNGKey(0), seeds)
    result = run_population(agent, keys, hp, eval_every=agent.num_iterations, eval_episodes=128)
    return {"variant": variant, "seeds": seeds, "devices": len(result.devices), "compile_s": result.compile_s,
            **timed, "eval_return": np.asarray(result.metrics["eval/return"]).ravel().tolist()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--out", default=os.path.join(ROOT, "experiments", "results", "ab_concurrent_init.json"))
    ap.add_argument("--one", nargs=2, metavar=("VARIANT", "SEEDS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]))))
        return
    rows = ab_rounds.interleaved(__file__, VARIANTS, SEEDS, args.rounds)
    summary = {}
    for seeds in SEEDS:
        by = {v: [x for x in rows if x["seeds"] == seeds and x["variant"] == v] for v in VARIANTS}
        s = {f"compile_s_median_{v}": statistics.median(x["compile_s"] for x in by[v]) for v in VARIANTS}
        s["init_compile_s_median"] = statistics.median(x["init_compile_s"] for x in by["one_after_other"])
        s["side_by_side_faster_in_rounds"] = sum(a["compile_s"] > b["compile_s"]
                                                 for a, b in zip(by["one_after_other"], by["side_by_side"]))
        s["same_eval_returns_bitwise"] = all(a["eval_return"] == b["eval_return"]
                                             for a, b in zip(by["one_after_other"], by["side_by_side"]))
        summary[f"{seeds}_seed{'s' if seeds > 1 else ''}"] = s
    out = {"rounds": args.rounds, "summary": summary, "rows": rows, "cpu_count": os.cpu_count(),
           "loadavg_after": os.getloadavg()}
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

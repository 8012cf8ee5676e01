"""A/B of tiny products as a multiply and sum (``rlx.nets.SMALL_MATMUL``) on the PPO CartPole bench.

    .venv/bin/python experiments/bench/ab_small_matmul.py              # 7 rounds, ~6 min
    .venv/bin/python experiments/bench/ab_small_matmul.py --rounds 3 --modes spread_1_seed

"dot": every dense layer is a dot (the matmul library's kernel, even for PPO's [4, 64] @ [64, 64]
acting step); "multiply_sum": products of at most nets.SMALL_ROWS rows with a weight of at most
nets.SMALL_WIDTH² are Σ_n x[..., n, None] w[n], in XLA's own fusions. The bench's program
(bench_ppo.py: 500k steps, the final evaluation) in three layouts, each in its own process
(host devices are fixed at start-up): "spread_1_seed" (what ``rlx train ppo --seeds 1`` runs),
"one_device_1_seed", and "spread_8_seeds" (``rlx train``'s default). Within a process both
variants compile, then the rounds run them in alternating order. Final returns must match.
Writes experiments/results/ab_small_matmul.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import ab_rounds  # beside this script

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VARIANTS = ("dot", "multiply_sum")
MODES = {"spread_1_seed": (1, True), "one_device_1_seed": (1, False), "spread_8_seeds": (8, True)}


def measure(mode: str, rounds: int) -> dict:
    seeds, spread = MODES[mode]
    from rlx.parallel import compile_faster, use_all_cpu_cores
    if spread:
        use_all_cpu_cores()
    compile_faster()  # as `rlx train` does
    import jax
    import jax.numpy as jnp
    import numpy as np

    from rlx import envs, nets
    from rlx.agents import ppo
    from rlx.parallel import shard_runs, vmap_runs
    from rlx.run import make_train

    env, env_params = envs.make("CartPole-v1")
    programs = {}
    for variant in VARIANTS:
        nets.SMALL_MATMUL = variant == "multiply_sum"  # read while tracing
        agent = ppo.make(ppo.PPOConfig(total_timesteps=500_000), env, env_params)
        train = vmap_runs(make_train(agent, eval_every=agent.num_iterations, eval_episodes=128), seeds)
        keys = jax.random.split(jax.random.PRNGKey(0), seeds)
        hp = jax.tree.map(lambda x: jnp.broadcast_to(x, (seeds,) + jnp.shape(x)), agent.default_hparams())
        t0 = time.perf_counter()
        call, devices = shard_runs(train, seeds, parts=agent.parts)
        call.compile(keys, hp)
        programs[variant] = (call, keys, hp, time.perf_counter() - t0)
        jax.block_until_ready(call(keys, hp))  # warm-up run
    nets.SMALL_MATMUL = True
    env_steps = seeds * agent.num_iterations * agent.steps_per_iteration
    finals = {}

    def run(variant):
        call, keys, hp, _ = programs[variant]
        _, metrics = call(keys, hp)
        finals[variant] = np.asarray(jax.block_until_ready(metrics["eval/return"]))[:, -1].tolist()

    seconds = ab_rounds.alternating(VARIANTS, rounds, run)
    rates = {v: [env_steps / t for t in seconds[v]] for v in VARIANTS}
    median = {v: statistics.median(rates[v]) for v in VARIANTS}
    return {"seeds": seeds, "devices": [str(d) for d in devices], "env_steps_per_s": rates,
            "median_env_steps_per_s": median, "speedup_multiply_sum": median["multiply_sum"] / median["dot"],
            "rounds_multiply_sum_faster": sum(a > b for a, b in zip(rates["multiply_sum"], rates["dot"])),
            "compile_s": {v: programs[v][3] for v in VARIANTS}, "final_return": finals,
            "same_final_returns": finals["dot"] == finals["multiply_sum"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=list(MODES), help=argparse.SUPPRESS)  # one mode, in this process
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--out", default=os.path.join(ROOT, "experiments", "results", "ab_small_matmul.json"))
    args = ap.parse_args()
    if args.mode:
        print("RESULT " + json.dumps(measure(args.mode, args.rounds)))
        return
    import jax
    results = {"rounds": args.rounds, "loadavg_before": os.getloadavg(),
               "versions": {"jax": jax.__version__, "python": sys.version.split()[0]}, "modes": {}}
    for mode in args.modes.split(","):
        p = subprocess.run([sys.executable, __file__, "--mode", mode, "--rounds", str(args.rounds)],
                           capture_output=True, text=True, cwd=ROOT, check=True)
        res = json.loads([line for line in p.stdout.splitlines() if line.startswith("RESULT ")][0][7:])
        results["modes"][mode] = res
        m = res["median_env_steps_per_s"]
        print(f"{mode}: {m['dot']:,.0f} -> {m['multiply_sum']:,.0f} env-steps/s (x{res['speedup_multiply_sum']:.3f}, "
              f"faster in {res['rounds_multiply_sum_faster']}/{args.rounds}; compile {res['compile_s']['dot']:.2f} -> "
              f"{res['compile_s']['multiply_sum']:.2f} s; same returns: {res['same_final_returns']})", flush=True)
    ab_rounds.write_results(results, args.out)


if __name__ == "__main__":
    main()

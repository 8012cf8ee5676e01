"""A/B of the MLPs' transposed first layer (``rlx.nets.TRANSPOSED_FIRST_LAYER``) on SAC and TD3.

    .venv/bin/python experiments/bench/ab_first_layer_transposed.py             # 9 rounds, ~6 min
    .venv/bin/python experiments/bench/ab_first_layer_transposed.py --rounds 3 --agents sac

"transposed": an MLP whose first layer has few inputs and a wide output (SAC's and TD3's
256×256 actor and critics on Pendulum: 3 or 4 inputs) also computes that layer's output
transposed, as Wᵀxᵀ + b, for the second layer's weight gradient; "transpose": the second
layer's backward pass transposes the activations instead (what rlx did before). The bench's
configuration (256×256, batch 256, one update per env step), one XLA device: each variant
compiles ``--iterations`` learning iterations (past the warm-up) as one program, and the rounds
run the variants in alternating order in one process. Reports ms per iteration (env step,
buffer, one update). Writes experiments/results/ab_first_layer_transposed.json.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys

import ab_rounds  # beside this script

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VARIANTS = ("transpose", "transposed")


def build(agent_name: str, variant: str, iterations: int):
    """(program, args, compile_s) of ``variant``: ``program(*args)`` runs the iterations."""
    from rlx import nets

    nets.TRANSPOSED_FIRST_LAYER = variant == "transposed"  # read while tracing
    try:
        return ab_rounds.compile_offpolicy_pendulum(agent_name, iterations)
    finally:
        nets.TRANSPOSED_FIRST_LAYER = True


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--agents", default="sac,td3")
    ap.add_argument("--out", default=os.path.join(ROOT, "experiments", "results", "ab_first_layer_transposed.json"))
    args = ap.parse_args()

    from rlx.parallel import compile_faster
    compile_faster()  # as `rlx train` does
    import jax

    results = {"rounds": args.rounds, "iterations": args.iterations, "loadavg_before": os.getloadavg(),
               "versions": {"jax": jax.__version__, "python": sys.version.split()[0]}, "agents": {}}
    for agent_name in args.agents.split(","):
        programs = {v: build(agent_name, v, args.iterations) for v in VARIANTS}
        run = lambda v: jax.block_until_ready(programs[v][0](*programs[v][1]))
        seconds = ab_rounds.alternating(VARIANTS, args.rounds, run)
        ms = {v: [1e3 * t / args.iterations for t in seconds[v]] for v in VARIANTS}
        median = {v: statistics.median(ms[v]) for v in VARIANTS}
        faster = sum(a < b for a, b in zip(ms["transposed"], ms["transpose"]))
        results["agents"][agent_name] = {
            "ms_per_iteration": ms, "median_ms_per_iteration": median,
            "speedup_transposed": median["transpose"] / median["transposed"],
            "rounds_transposed_faster": faster,
            "compile_s": {v: programs[v][2] for v in VARIANTS}}
        print(f"{agent_name}: {median['transpose']:.3f} -> {median['transposed']:.3f} ms per iteration "
              f"(x{median['transpose'] / median['transposed']:.3f}, faster in {faster}/{args.rounds} rounds)", flush=True)
    ab_rounds.write_results(results, args.out)


if __name__ == "__main__":
    main()

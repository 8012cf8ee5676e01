"""A/B of the off-policy learners' in-place loops (``rlx.critics.IN_PLACE_LOOPS``) on SAC and TD3.

    .venv/bin/python experiments/bench/ab_in_place_loops.py             # 9 rounds, ~6 min
    .venv/bin/python experiments/bench/ab_in_place_loops.py --rounds 3 --agents sac

"loop": the warm-up skip of the learning phase (SAC, TD3) and TD3's delayed actor update are
while loops of one trip or none (``critics.learn_unless``, ``critics.run_if``), which update the
parameters, Adam moments and targets in place; "cond": the same branches as ``lax.cond``, whose
results XLA copies out every iteration (what rlx did before). The bench's configuration
(256×256, batch 256, one update per env step), one XLA device: each variant compiles
``--iterations`` learning iterations (past the warm-up) as one program, and the rounds run the
variants in alternating order in one process. Reports ms per iteration (env step, buffer, one
update), and how far apart the two variants' parameters are after 20 learning iterations: XLA
fuses the two programs differently, so they round differently (about 1e-8 here), and training
amplifies that over longer runs. Writes experiments/results/ab_in_place_loops.json.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys

import ab_rounds  # beside this script

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VARIANTS = ("cond", "loop")


def build(agent_name: str, variant: str, iterations: int):
    """(program, args, compile_s) of ``variant``: ``program(*args)`` runs the iterations."""
    from rlx import critics

    critics.IN_PLACE_LOOPS = variant == "loop"  # read while tracing
    try:
        return ab_rounds.compile_offpolicy_pendulum(agent_name, iterations)
    finally:
        critics.IN_PLACE_LOOPS = True


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--agents", default="sac,td3")
    ap.add_argument("--out", default=os.path.join(ROOT, "experiments", "results", "ab_in_place_loops.json"))
    args = ap.parse_args()

    from rlx.parallel import compile_faster
    compile_faster()  # as `rlx train` does
    import jax
    import numpy as np

    results = {"rounds": args.rounds, "iterations": args.iterations, "loadavg_before": os.getloadavg(),
               "versions": {"jax": jax.__version__, "python": sys.version.split()[0]}, "agents": {}}
    for agent_name in args.agents.split(","):
        programs = {v: build(agent_name, v, args.iterations) for v in VARIANTS}
        ends = {}
        for v in VARIANTS:
            program, program_args, _ = build(agent_name, v, 20)
            ends[v] = [np.asarray(x) for x in jax.tree.leaves(program(*program_args)[0]["state"].params)]
        diff = max(float(np.abs(a - b).max()) for a, b in zip(*ends.values()))
        run = lambda v: jax.block_until_ready(programs[v][0](*programs[v][1]))
        seconds = ab_rounds.alternating(VARIANTS, args.rounds, run)
        ms = {v: [1e3 * t / args.iterations for t in seconds[v]] for v in VARIANTS}
        median = {v: statistics.median(ms[v]) for v in VARIANTS}
        faster = sum(a < b for a, b in zip(ms["loop"], ms["cond"]))
        results["agents"][agent_name] = {
            "ms_per_iteration": ms, "median_ms_per_iteration": median,
            "speedup_loop": median["cond"] / median["loop"], "rounds_loop_faster": faster,
            "max_abs_parameter_difference_after_20_iterations": diff, "compile_s": {v: programs[v][2] for v in VARIANTS}}
        print(f"{agent_name}: {median['cond']:.3f} -> {median['loop']:.3f} ms per iteration "
              f"(x{median['cond'] / median['loop']:.3f}, faster in {faster}/{args.rounds} rounds; "
              f"parameters after 20 iterations differ by at most {diff:.1e})", flush=True)
    ab_rounds.write_results(results, args.out)


if __name__ == "__main__":
    main()

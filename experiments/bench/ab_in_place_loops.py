"""A/B/C of the learners' in-place updates (``rlx.critics``' switches) on SAC, TD3 and IQL.

    .venv/bin/python experiments/bench/ab_in_place_loops.py             # 9 rounds, ~6 min
    .venv/bin/python experiments/bench/ab_in_place_loops.py --rounds 3 --agents sac
    .venv/bin/python experiments/bench/ab_in_place_loops.py --agents iql --variants loop,loop_ordered \
        --out experiments/results/ab_ordered_writes_iql.json        # IQL: ms per gradient step

"cond": the learning phase, skipped during warm-up, is a ``lax.cond`` whose results XLA copies
out every iteration (what rlx did before); "loop": it is a while loop of gradient_steps trips or
none (``critics.learn_unless``), which updates parameters, Adam moments and targets in place;
"loop_ordered": also every parameter write waits for every gradient (``critics.zero_after``).
The bench's configuration (256×256, batch 256, one update per env step), one XLA device: each
variant compiles ``--iterations`` learning iterations (past the warm-up) as one program, and the
rounds run the variants in alternating order in one process. Reports ms per iteration (env step,
buffer, one update; IQL: one gradient step), and how far apart the variants' parameters are after
20 learning iterations: XLA
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
VARIANTS = ("cond", "loop", "loop_ordered")


def build(agent_name: str, variant: str, iterations: int):
    """(program, args, compile_s) of ``variant``: ``program(*args)`` runs the iterations."""
    from rlx import critics

    critics.IN_PLACE_LOOPS = variant != "cond"  # read while tracing
    critics.ORDERED_WRITES = variant == "loop_ordered"
    try:
        if agent_name == "iql":
            return compile_iql(iterations)
        return ab_rounds.compile_offpolicy_pendulum(agent_name, iterations)
    finally:
        critics.IN_PLACE_LOOPS = critics.ORDERED_WRITES = True


def compile_iql(steps: int):
    """IQL, 256×256, batch 256, on 200k synthetic hopper-shaped transitions (the IQL bench's data,
    smaller): ``steps`` gradient steps as one compiled ``update``. IQL has no warm-up, so "cond"
    and "loop" are the same program; only "loop_ordered" differs."""
    import time

    import jax

    import iql_common  # beside this script
    from rlx import data, envs
    from rlx.agents import iql

    arrays = iql_common.hopper_like(200_000, seed=0)
    ds = data.from_arrays(**arrays, metadata=data.Metadata(env_id="brax:hopper", source="synthetic: hopper_like"))
    env, env_params = envs.make("brax:hopper")
    config = iql.IQLConfig(total_steps=100 * steps, steps_per_iteration=steps, batch_size=256, hidden=(256, 256))
    agent = iql.make(config, ds, env, env_params)
    hp = agent.default_hparams()
    state = jax.jit(agent.init)(jax.random.PRNGKey(0), hp)
    t0 = time.perf_counter()
    program = jax.jit(agent.update).lower(state, hp).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(program(state, hp))  # warm-up run
    return program, (state, hp), compile_s


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--agents", default="sac,td3")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--out", default=os.path.join(ROOT, "experiments", "results", "ab_in_place_loops.json"))
    args = ap.parse_args()

    from rlx.parallel import compile_faster
    compile_faster()  # as `rlx train` does
    import jax
    import numpy as np

    results = {"rounds": args.rounds, "iterations": args.iterations, "loadavg_before": os.getloadavg(),
               "versions": {"jax": jax.__version__, "python": sys.version.split()[0]}, "agents": {}}
    variants = tuple(args.variants.split(","))
    for agent_name in args.agents.split(","):
        programs = {v: build(agent_name, v, args.iterations) for v in variants}
        ends = {}
        for v in variants:
            program, program_args, _ = build(agent_name, v, 20)
            end = program(*program_args)[0]
            ends[v] = [np.asarray(x) for x in jax.tree.leaves((end["state"] if isinstance(end, dict) else end).params)]
        diff = max(float(np.abs(a - b).max()) for v in variants for a, b in zip(ends[variants[0]], ends[v]))
        run = lambda v: jax.block_until_ready(programs[v][0](*programs[v][1]))
        seconds = ab_rounds.alternating(variants, args.rounds, run)
        ms = {v: [1e3 * t / args.iterations for t in seconds[v]] for v in variants}
        median = {v: statistics.median(ms[v]) for v in variants}
        base = variants[0]
        row = {"ms_per_iteration": ms, "median_ms_per_iteration": median,
               "speedup_over_" + base: {v: median[base] / median[v] for v in variants[1:]},
               "rounds_faster_than_" + base: {v: sum(a < b for a, b in zip(ms[v], ms[base])) for v in variants[1:]},
               "max_abs_parameter_difference_after_20_iterations": diff,
               "compile_s": {v: programs[v][2] for v in variants}}
        results["agents"][agent_name] = row
        print(f"{agent_name}: " + ", ".join(f"{v} {median[v]:.3f} ms" for v in variants) + " per iteration; "
              + ", ".join(f"{v} x{median[base] / median[v]:.3f} ({row['rounds_faster_than_' + base][v]}/{args.rounds})"
                          for v in variants[1:])
              + f"; parameters after 20 iterations differ by at most {diff:.1e}", flush=True)
    ab_rounds.write_results(results, args.out)


if __name__ == "__main__":
    main()

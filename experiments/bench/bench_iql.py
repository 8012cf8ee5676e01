"""rlx side of the IQL benchmark: gradient steps per second, batch 256, 256×256 networks.

    .venv/bin/python experiments/bench/bench_iql.py --seeds 1 --devices 1 --out F.json
    .venv/bin/python experiments/bench/bench_iql.py --seeds 8 --devices all --out F.json

Data: iql_common.hopper_like (1M seeded random transitions, hopper's shapes); the env is
brax:hopper, as an offline hopper run would have it, but nothing evaluates it: only
gradient steps are timed. The runs are vmapped over a leading seeds axis, as ``rlx
train`` does; ``--devices all`` first asks XLA for one host device per core
(``use_all_cpu_cores``, before jax starts) and shards the seeds over them, which is
``rlx train``'s default on a CPU.

The process runs ``--steps`` gradient steps per seed as ``--steps / --chunk`` calls of the
compiled ``agent.update`` (each call is ``--chunk`` steps in a lax.scan), timing every call.
Reported:
  compile_s      lowering + XLA compilation of the vmapped update, alone
  startup_s      process launch -> ready to run the first gradient step (interpreter,
                 imports, brax env, data, agent, state init, compile), with a breakdown
  steps_per_s    gradient steps/s summed over seeds, from the median call (first excluded)
  wall_s         process launch -> last gradient step done
  e2e_steps_per_s  seeds × steps / wall_s: the aggregate with start-up included
FLOPs: XLA counts a loop body once, so the same update is built with steps_per_iteration=1
and compiled alone (batch sampling, the three losses and their gradients, Adam, Polyak);
its cost_analysis() FLOPs × steps_per_s = GFLOP/s.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import iql_common  # noqa: E402

T_LAUNCH = iql_common.launch_time()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--devices", default="1", help="'all' (one host device per core, the CLI default) or '1'")
    ap.add_argument("--steps", type=int, default=20_000, help="gradient steps per seed")
    ap.add_argument("--chunk", type=int, default=1_000, help="gradient steps per update call (steps_per_iteration)")
    ap.add_argument("--transitions", type=int, default=1_000_000)
    ap.add_argument("--env", default="brax:hopper")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if args.steps % args.chunk:
        ap.error(f"--steps {args.steps} is not a multiple of --chunk {args.chunk}")

    from rlx.parallel import use_all_cpu_cores
    if args.devices == "all":
        use_all_cpu_cores()
    elif args.devices != "1":
        ap.error("--devices must be 1 or all")

    load_before = os.getloadavg()
    marks = {}

    def mark(name):
        marks[name] = time.time() - T_LAUNCH

    mark("python_started")  # interpreter up, this script's own imports done
    import jax
    import jax.numpy as jnp
    import numpy as np
    mark("jax_imported")

    from rlx import data, envs
    from rlx.agents import iql
    from rlx.parallel import RunsMesh, vmap_runs
    env, env_params = envs.make(args.env)
    mark("rlx_and_env_ready")

    arrays = iql_common.hopper_like(args.transitions, seed=0)
    ds = data.from_arrays(**arrays, metadata=data.Metadata(env_id=args.env, source="synthetic: iql_common.hopper_like"))
    mark("data_ready")

    config = iql.IQLConfig(total_steps=args.steps, steps_per_iteration=args.chunk, batch_size=256, hidden=(256, 256))
    agent = iql.make(config, ds, env, env_params)
    hp1 = agent.default_hparams()
    mesh = RunsMesh(args.seeds)
    keys = mesh.put(jax.random.split(jax.random.PRNGKey(0), args.seeds))
    hp = mesh.put(jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (args.seeds,) + np.shape(x)), hp1))
    states = mesh.jit(vmap_runs(agent.init, mesh.padded))(keys, hp)
    jax.block_until_ready(states)
    mark("state_ready")

    t0 = time.perf_counter()
    update = mesh.jit(vmap_runs(agent.update, mesh.padded)).lower(states, hp).compile()
    compile_s = time.perf_counter() - t0
    mark("compiled")
    startup_s = marks["compiled"]

    call_s = []
    for _ in range(args.steps // args.chunk):
        t0 = time.perf_counter()
        states, metrics = update(states, hp)
        jax.block_until_ready((states, metrics))
        call_s.append(time.perf_counter() - t0)
    wall_s = time.time() - T_LAUNCH
    load_after = os.getloadavg()
    steady = call_s[1:] if len(call_s) > 1 else call_s
    steps_per_s = args.seeds * args.chunk / iql_common.median(steady)
    finite = bool(np.all(np.isfinite(np.asarray(metrics["loss/critic"]))))

    # XLA's FLOP count of ONE gradient step, compiled alone (not counted in any time above).
    one = iql.make(iql.IQLConfig(total_steps=1, steps_per_iteration=1, batch_size=256, hidden=(256, 256)),
                   ds, env, env_params)
    state1 = jax.jit(one.init)(jax.random.PRNGKey(0), hp1)
    flops_step = iql_common.cost_flops(jax.jit(one.update).lower(state1, hp1).compile())

    out = {
        "framework": "rlx", "algo": "iql", "env": args.env, "seeds": args.seeds, "devices": [str(d) for d in mesh.devices],
        "device_setting": args.devices, "batch_size": 256, "hidden": [256, 256], "transitions": args.transitions,
        "steps_per_seed": args.steps, "chunk": args.chunk,
        "compile_s": compile_s, "startup_s": startup_s, "startup_breakdown_s": marks,
        "call_s": call_s, "steps_per_s": steps_per_s, "steps_per_s_per_seed": steps_per_s / args.seeds,
        "wall_s": wall_s, "e2e_steps_per_s": args.seeds * args.steps / wall_s,
        "xla_flops_per_step": flops_step,
        "gflops_per_s": None if flops_step is None else flops_step * steps_per_s / 1e9,
        "losses_finite": finite,
        "loadavg_before": load_before, "loadavg_after": load_after,
        "versions": {"jax": jax.__version__, "python": sys.version.split()[0]},
    }
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
    print(json.dumps({k: out[k] for k in ("seeds", "devices", "compile_s", "startup_s", "steps_per_s", "wall_s",
                                          "e2e_steps_per_s", "xla_flops_per_step", "gflops_per_s", "losses_finite")}))


if __name__ == "__main__":
    main()

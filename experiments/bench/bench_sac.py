"""rlx side of the SAC Pendulum benchmark: the anchors' configuration, timed.

    .venv/bin/python experiments/bench/bench_sac.py --seeds 1 --devices 1 --out F.json

Pendulum-v1, 256×256 ReLU actor and twin critics, batch 256, one update per env step
(1 env, train_freq 1, gradient_steps 1), 1000 warm-up steps, 20k steps, one deterministic
evaluation at the end (16 episodes). ``--devices all`` is what ``rlx train`` does by
default on a CPU (one XLA host device per core, runs sharded).

FLOPs: XLA counts a loop body once, so the whole program's cost_analysis() undercounts.
We compile one gradient step alone (replay sample, critic + actor + temperature losses and
gradients, Adam, Polyak), take XLA's count, and multiply by the number of updates.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--devices", default="1", help="'all' (one host device per core, the CLI default) or '1'")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    from rlx.parallel import compile_faster, use_all_cpu_cores
    if args.devices == "all":
        use_all_cpu_cores()
    compile_faster()  # as `rlx train` does (a no-op if XLA_FLAGS sets a level)

    import jax
    import jax.numpy as jnp
    import numpy as np

    from rlx import envs
    from rlx.agents import sac
    from rlx.parallel import shard_runs, vmap_runs
    from rlx.run import make_train

    load_before = os.getloadavg()
    env, params = envs.make("Pendulum-v1")
    config = sac.SACConfig(total_timesteps=args.steps, hidden=(256, 256), batch_size=256, learning_starts=1000)
    agent = sac.make(config, env, params)
    hp1 = agent.default_hparams()
    train = vmap_runs(make_train(agent, eval_every=agent.num_iterations, eval_episodes=16), args.seeds)
    keys = jax.random.split(jax.random.PRNGKey(0), args.seeds)
    hp = jax.tree.map(lambda x: jnp.broadcast_to(x, (args.seeds,) + jnp.shape(x)), hp1)

    t0 = time.perf_counter()
    call, devices = shard_runs(train, args.seeds)
    call.compile(keys, hp)
    compile_s = time.perf_counter() - t0
    run_s, final = [], None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        _, metrics = call(keys, hp)
        final = np.asarray(jax.block_until_ready(metrics["eval/return"]))[:, -1]
        run_s.append(time.perf_counter() - t0)
    env_steps = agent.num_iterations * agent.steps_per_iteration
    updates = (agent.num_iterations - config.learning_starts) * config.gradient_steps

    # XLA's FLOP count of one update, compiled alone, on a state with a filled buffer.
    state = jax.jit(agent.init)(jax.random.PRNGKey(0), hp1)
    step = jax.jit(agent.update.gradient_step)
    compiled = step.lower(state, hp1, jax.random.PRNGKey(1)).compile()
    ca = compiled.cost_analysis()
    ca = ca[0] if isinstance(ca, (list, tuple)) else ca
    flops_update = float(ca.get("flops", 0.0))

    run = min(run_s)
    out = {
        "framework": "rlx", "algo": "sac", "env": "Pendulum-v1", "seeds": args.seeds, "steps": env_steps,
        "updates_per_seed": updates, "devices": [str(d) for d in devices], "compile_s": compile_s, "run_s": run_s,
        "run_s_median": run, "env_steps_per_s": args.seeds * env_steps / run,
        "updates_per_s": args.seeds * updates / run,
        "final_return": final.tolist(), "final_return_median": float(np.median(final)),
        "xla_flops_per_update": flops_update, "gflops_per_s": flops_update * args.seeds * updates / run / 1e9,
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
        "versions": {"jax": jax.__version__, "python": sys.version.split()[0]},
    }
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
    print(json.dumps({k: out[k] for k in ("seeds", "devices", "compile_s", "env_steps_per_s", "updates_per_s",
                                          "final_return_median", "xla_flops_per_update", "gflops_per_s")}))


if __name__ == "__main__":
    main()

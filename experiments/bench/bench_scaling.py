"""PPO CartPole throughput against the number of vmapped seeds, on 1 vs 2 (forced host) devices,
and the overhead of checkpointing + progress reporting.

    .venv/bin/python experiments/bench/bench_scaling.py --seeds 1,2,4,8,16,32,64 --iterations 60

Each device setting runs in its own process (XLA_FLAGS must be set before jax starts). Each
point is rlx.run.run_population: compile once, then time the run (compilation excluded).
Writes experiments/results/bench_scaling.json and .png.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "..", "results")


def worker(args):
    import jax
    import jax.numpy as jnp
    import numpy as np

    from rlx import envs
    from rlx.agents import ppo
    from rlx.checkpoint import Checkpointer
    from rlx.progress import ProgressBar
    from rlx.run import run_population

    env, ep = envs.make("CartPole-v1")
    n = args.iterations
    agent = ppo.make(ppo.PPOConfig(total_timesteps=n * 512), env, ep)

    def population(S):
        keys = jax.random.split(jax.random.PRNGKey(0), S)
        hp = jax.tree.map(lambda x: jnp.broadcast_to(x, (S,) + jnp.shape(x)), agent.default_hparams())
        return keys, hp

    out = {"devices": [str(d) for d in jax.devices()], "points": []}
    for S in [int(s) for s in args.seeds.split(",")] if not args.overhead_only else []:
        keys, hp = population(S)
        res = run_population(agent, keys, hp, eval_every=n, eval_episodes=8)
        steps = S * n * agent.steps_per_iteration
        out["points"].append({"seeds": S, "wall_s": res.wall_s, "compile_s": res.compile_s,
                              "env_steps_per_s": steps / res.wall_s})
        print(json.dumps(out["points"][-1]), file=sys.stderr, flush=True)

    if args.overhead_seeds:
        S, n = args.overhead_seeds, args.overhead_iterations
        agent = ppo.make(ppo.PPOConfig(total_timesteps=n * 512), env, ep)
        keys, hp = population(S)
        steps = S * n * agent.steps_per_iteration
        cache_plain, cache_ck = {}, {}
        plain, progress_only, chunked = [], [], []
        import tempfile

        K = max(1, n // args.chunks)
        for rep in range(args.repeats):
            res = run_population(agent, keys, hp, eval_every=n, eval_episodes=8, cache=cache_plain)
            plain.append(steps / res.wall_s)
            bar = ProgressBar(n, agent.steps_per_iteration, runs=S, desc="progress only")
            res = run_population(agent, keys, hp, eval_every=n, eval_episodes=8, chunk_iterations=K,
                                 progress=bar.callback, cache=cache_ck)
            bar.close()
            progress_only.append(steps / res.wall_s)
            with tempfile.TemporaryDirectory() as d:
                bar = ProgressBar(n, agent.steps_per_iteration, runs=S, desc="progress + checkpoints")
                ck = Checkpointer(d, {"bench": rep})
                res = run_population(agent, keys, hp, eval_every=n, eval_episodes=8, chunk_iterations=K,
                                     checkpointer=ck, checkpoint_every=args.checkpoint_every, progress=bar.callback,
                                     cache=cache_ck)
                bar.close()
                chunked.append(steps / res.wall_s)
        med = lambda xs: float(np.median(xs))
        out["overhead"] = {"seeds": S, "iterations": n, "chunks": -(-n // K), "chunk_iterations": K,
                           "checkpoint_every": args.checkpoint_every,
                           "checkpoints": len(range(args.checkpoint_every, n, args.checkpoint_every)) + 1,
                           "plain_env_steps_per_s": plain, "progress_env_steps_per_s": progress_only,
                           "progress_and_checkpoints_env_steps_per_s": chunked,
                           "progress_overhead_fraction": 1 - med(progress_only) / med(plain),
                           "overhead_fraction": 1 - med(chunked) / med(plain)}
        print(json.dumps(out["overhead"]), file=sys.stderr, flush=True)
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="1,2,4,8,16,32,64")
    ap.add_argument("--iterations", type=int, default=60, help="PPO iterations per run (512 env steps each)")
    ap.add_argument("--devices", default="1,2")
    ap.add_argument("--overhead-seeds", type=int, default=8)
    ap.add_argument("--overhead-iterations", type=int, default=400)
    ap.add_argument("--chunks", type=int, default=20, help="chunks (progress updates) in the overhead measurement")
    ap.add_argument("--checkpoint-every", type=int, default=100, help="iterations between checkpoints there")
    ap.add_argument("--overhead-only", action="store_true", help="re-measure only the overhead; keep the rest "
                    "of an existing --out JSON")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--merge", action="store_true", help="replace only the --devices curves of an existing --out JSON")
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--out", default=os.path.join(RESULTS, "bench_scaling"))
    args = ap.parse_args()
    if args.worker:
        return worker(args)

    result = {"benchmark": "PPO CartPole-v1 throughput vs vmapped seeds (4 envs × 128 steps, 4×4 minibatch "
                           "epochs, 64×64 tanh); compile excluded", "iterations": args.iterations,
              "load_before": os.getloadavg(), "by_devices": {}}
    if args.overhead_only or args.merge:
        with open(args.out + ".json") as f:
            result = json.load(f)
    if args.overhead_only:
        args.seeds, args.devices = "1", str(max(int(d) for d in result["by_devices"]))
    for D in [int(d) for d in args.devices.split(",")]:
        if args.overhead_only:
            args.iterations = 1
        env = {**os.environ, "JAX_PLATFORMS": "cpu",
               "XLA_FLAGS": f"--xla_force_host_platform_device_count={D}" if D > 1 else ""}
        cmd = [sys.executable, __file__, "--worker", "--seeds", args.seeds, "--iterations", str(args.iterations),
               *(["--overhead-only"] if args.overhead_only else []), "--overhead-seeds", str(args.overhead_seeds if D == max(map(int, args.devices.split(","))) else 0),
               "--chunks", str(args.chunks), "--checkpoint-every", str(args.checkpoint_every), "--overhead-iterations", str(args.overhead_iterations), "--repeats", str(args.repeats)]
        t0 = time.time()
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
        if p.returncode:
            sys.exit(p.stderr[-3000:])
        got = json.loads(p.stdout.strip().splitlines()[-1])
        if args.overhead_only:
            result["by_devices"][str(D)]["overhead"] = got["overhead"]
            result["by_devices"][str(D)].setdefault("overhead_runs", []).append(got["overhead"])
        else:
            result["by_devices"][str(D)] = got
        print(f"{D} device(s): {time.time() - t0:.0f} s", file=sys.stderr)
    result["load_after"] = os.getloadavg()
    with open(args.out + ".json", "w") as f:
        json.dump(result, f, indent=2)
    plot(result, args.out + ".png")
    print(json.dumps(result, indent=1))


def plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4), dpi=120)
    for D, r in result["by_devices"].items():
        s = [p["seeds"] for p in r["points"]]
        ax.plot(s, [p["env_steps_per_s"] / 1e3 for p in r["points"]], "o-",
                label=f"{D} XLA host device{'s' if int(D) > 1 else ''}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("vmapped seeds")
    ax.set_ylabel("thousand env-steps / s")
    runs = next((r.get("overhead_runs") or [r["overhead"]] for r in result["by_devices"].values() if "overhead" in r),
                None)
    title = "PPO CartPole-v1 on 2 CPU cores"
    if runs:
        ov = runs[-1]
        title += f"\nprogress + checkpoint overhead ({ov['seeds']} seeds, 2 devices):\n" + "; ".join(
            f"{o['iterations']} it./{o['chunks']} updates/{o['checkpoints']} ckpts {100 * o['overhead_fraction']:.1f}%"
            for o in runs)
    ax.set_title(title, fontsize=8.5)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    main()

"""Where a training iteration's time goes: XLA:CPU kernels timed by jax.profiler, per iteration.

    .venv/bin/python experiments/bench/profile_kernels.py ppo            # the PPO CartPole bench config
    .venv/bin/python experiments/bench/profile_kernels.py sac --top 15   # the SAC Pendulum bench config
    .venv/bin/python experiments/bench/profile_kernels.py sac --out experiments/results/profile_sac.json

Compiles ``--iterations`` training iterations as one program (rlx.run.make_chunks, no
evaluation), advancing first past any warm-up (SAC's learning_starts) so that every profiled
iteration learns. Runs it once to warm up, then once under ``jax.profiler.trace`` and reads
the trace with ``jax.profiler.ProfileData``. Prints the wall time per iteration, the kernels
that took the most thread time per iteration (summed over XLA's executor threads, so the
total can exceed the wall time when kernels run side by side), and the thread time by kind
of kernel: matmul-library fusions (YNN/XNN/oneDNN), XLA's own loop fusions, and the rest.

Profile before optimising: a kernel that is not in the top of this list is not worth making
faster. The configurations are the benchmarks' (bench_ppo.py, bench_sac.py). The profiler
costs a little per kernel, so a program of many tiny kernels (PPO's CartPole rollout: about
20 per env step) runs well below its normal speed under it; compare kernels with each other,
not the wall time with a benchmark's.
"""
from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import sys
import tempfile
import time

# Not kernels: the executor's bookkeeping, and control-flow thunks (a while loop's or a
# conditional's event spans the kernels of its body, which are counted themselves).
_NOT_KERNELS = ("ThunkExecutor", "SlinkyThreadPool", "block_until_ready", "while", "cond", "call")


def build(agent_name: str):
    """(agent, hparams, warm-up iterations) for a benchmark's configuration."""
    from rlx import envs
    from rlx.agents import ppo, sac

    if agent_name == "ppo":
        env, params = envs.make("CartPole-v1")
        agent = ppo.make(ppo.PPOConfig(total_timesteps=500_000), env, params)
        return agent, agent.default_hparams(), 0
    env, params = envs.make("Pendulum-v1")
    config = sac.SACConfig(total_timesteps=20_000, hidden=(256, 256), batch_size=256, learning_starts=1000)
    agent = sac.make(config, env, params)
    return agent, agent.default_hparams(), -(-config.learning_starts // config.train_freq)


def kind(name: str) -> str:
    if any(lib in name for lib in ("ynn", "xnn", "onednn")):
        return "matmul library fusions"
    if "fusion" in name:
        return "XLA loop fusions"
    return "other (copies, custom calls, ...)"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("agent", choices=("ppo", "sac"))
    ap.add_argument("--iterations", type=int, default=None, help="iterations profiled (default: ppo 20, sac 300)")
    ap.add_argument("--top", type=int, default=20, help="kernels listed")
    ap.add_argument("--out", default=None, help="also write the profile as JSON")
    args = ap.parse_args()

    import jax
    import numpy as np

    from rlx.run import make_chunks

    agent, hp, warmup = build(args.agent)
    n = args.iterations or {"ppo": 20, "sac": 300}[args.agent]
    if warmup + n > agent.num_iterations:
        sys.exit(f"--iterations: at most {agent.num_iterations - warmup} for {args.agent}, got {n}")
    prog = make_chunks(agent, eval_episodes=0)
    carry = jax.jit(prog.init)(jax.random.PRNGKey(0), hp)
    advance = jax.jit(prog.advance, static_argnums=3)
    if warmup:
        carry, _ = advance(carry, hp, np.int32(0), warmup)
    program = advance.lower(carry, hp, np.int32(warmup), n).compile()
    jax.block_until_ready(program(carry, hp, np.int32(warmup)))  # warm-up run

    with tempfile.TemporaryDirectory() as trace_dir:
        with jax.profiler.trace(trace_dir):
            t0 = time.perf_counter()
            jax.block_until_ready(program(carry, hp, np.int32(warmup)))
            wall = time.perf_counter() - t0
        path = glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True)[0]
        profile = jax.profiler.ProfileData.from_file(path)

    thread_ns, calls = collections.Counter(), collections.Counter()
    for plane in profile.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_XLA"):  # XLA's executor threads only (not python)
                continue
            for event in line.events:
                if not event.name.startswith(_NOT_KERNELS):
                    thread_ns[event.name] += event.duration_ns
                    calls[event.name] += 1
    per_iter_ms = {name: ns / 1e6 / n for name, ns in thread_ns.items()}
    by_kind = collections.Counter()
    for name, ms in per_iter_ms.items():
        by_kind[kind(name)] += ms

    top = sorted(per_iter_ms.items(), key=lambda kv: -kv[1])[: args.top]
    print(f"{args.agent}: {n} iterations, {1e3 * wall / n:.3f} ms wall per iteration (under the profiler)")
    print(f"{'thread ms/iter':>14}  {'calls/iter':>10}  kernel")
    for name, ms in top:
        print(f"{ms:14.3f}  {calls[name] / n:10.2f}  {name}")
    total = sum(by_kind.values())
    print(f"\nthread time per iteration by kind ({total:.3f} ms in all):")
    for k, ms in by_kind.most_common():
        print(f"{ms:14.3f}  {100 * ms / total:5.1f}%  {k}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"agent": args.agent, "iterations": n, "wall_ms_per_iteration": 1e3 * wall / n,
                       "thread_ms_per_iteration_by_kind": dict(by_kind),
                       "top_kernels": [{"name": k, "thread_ms_per_iteration": v, "calls_per_iteration": calls[k] / n}
                                       for k, v in top],
                       "versions": {"jax": jax.__version__, "python": sys.version.split()[0]},
                       "cpu_count": os.cpu_count()}, f, indent=2)


if __name__ == "__main__":
    main()

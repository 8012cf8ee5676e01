"""A/B of jax's two CPU lowerings of the threefry hash, on PPO CartPole (the benchmark's config).

    .venv/bin/python experiments/bench/ab_threefry.py          # all three modes, each in its own process

jax lowers threefry2x32 on CPU as a 5-trip loop ("rolled", jax's default) and everywhere else
straight-line ("unrolled"); ``rlx.run`` registers a choice per hash ("by_size": straight-line for
hashes of at least 16 values, the loop for smaller ones). Each mode runs in a fresh process and
times, for a plain ``jit(train)`` (one run) and a ``jit(vmap(train))`` of 8 seeds on one XLA
device: trace, compile and the median of 3 runs of 500k env steps. Writes experiments/results/ab_threefry.json.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def measure(mode: str) -> dict:
    import jax
    import jax.numpy as jnp

    from rlx import envs
    from rlx.agents import ppo
    from rlx.run import make_train  # importing rlx.run registers rlx's lowering; each mode below overrides it

    from jax._src.interpreters import mlir  # private jax API, fine for an experiment
    from jax._src.random import threefry2x32 as threefry
    if mode == "unrolled":  # the lowering jax uses on GPU/TPU
        mlir.register_lowering(threefry.threefry2x32_p, threefry._threefry2x32_lowering_rule, platform="cpu")
    elif mode == "rolled":  # jax's CPU default
        mlir.register_lowering(threefry.threefry2x32_p, threefry._threefry2x32_cpu_lowering_rule, platform="cpu")
    elif mode != "by_size":  # by_size: what rlx.run registered
        raise ValueError(f"mode must be rolled, unrolled or by_size, got {mode!r}")

    env, env_params = envs.make("CartPole-v1")
    agent = ppo.make(ppo.PPOConfig(total_timesteps=500_000), env, env_params)
    hp = agent.default_hparams()
    train = make_train(agent, eval_every=agent.num_iterations, eval_episodes=128)
    steps = agent.num_iterations * agent.steps_per_iteration
    out = {}
    for name, seeds in (("plain_1_seed", 1), ("vmap_8_seeds_1_device", 8)):
        if seeds == 1:
            fn, args = jax.jit(train), (jax.random.PRNGKey(0), hp)
        else:
            fn = jax.jit(jax.vmap(train))
            args = (jax.random.split(jax.random.PRNGKey(0), seeds),
                    jax.tree.map(lambda x: jnp.broadcast_to(x, (seeds,) + jnp.shape(x)), hp))
        t0 = time.perf_counter()
        lowered = fn.lower(*args)
        t1 = time.perf_counter()
        compiled = lowered.compile()
        t2 = time.perf_counter()
        runs = []
        for _ in range(3):
            t = time.perf_counter()
            jax.block_until_ready(compiled(*args))
            runs.append(time.perf_counter() - t)
        out[name] = {"trace_s": t1 - t0, "compile_s": t2 - t1, "run_s": runs,
                     "env_steps_per_s": seeds * steps / statistics.median(runs)}
        print(mode, name, json.dumps(out[name]), flush=True)
    out["loadavg_after"] = os.getloadavg()
    return out


def main():
    if len(sys.argv) > 1:
        print("RESULT " + json.dumps(measure(sys.argv[1])))
        return
    results = {"load_before": os.getloadavg()}
    modes = ("rolled", "unrolled", "by_size")
    for mode in modes:
        p = subprocess.run([sys.executable, __file__, mode], capture_output=True, text=True, cwd=ROOT, check=True)
        results[mode] = json.loads([line for line in p.stdout.splitlines() if line.startswith("RESULT ")][0][7:])
    for name in ("plain_1_seed", "vmap_8_seeds_1_device"):
        print(name + ": " + " | ".join(f"{mode} {results[mode][name]['env_steps_per_s']:,.0f} env-steps/s, compile "
                                       f"{results[mode][name]['compile_s']:.1f} s" for mode in modes))
    with open(os.path.join(ROOT, "experiments", "results", "ab_threefry.json"), "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()

"""A/B of PPO's rollout loop on CartPole (the benchmark's config): env stack × packed carry.

    .venv/bin/python experiments/bench/ab_rollout.py            # both modes, ~10 min
    .venv/bin/python experiments/bench/ab_rollout.py --rounds 3

Variants (on jax 0.10 every one gives bitwise the same parameters; the tests check both halves):
  env stack  "gymnax_step": gymnax's own step, which splits the key and draws a reset inside
             every step; "rlx_autoreset": ``AutoReset(GymnaxNoReset(env))``, whose resets PPO
             draws for the whole rollout before the loop (``VecEnv.presample``).
  carry      "leaves": ``lax.scan`` carrying one buffer per state leaf; "packed":
             ``rlx.packing.scan``, one buffer per dtype.

Two modes, each in its own process so that one machine phase hits all four variants alike
(rounds interleave the variants):
  "update_1_device": ms per PPO iteration of a jitted loop of 100 ``agent.update`` calls on
                     one XLA device (no evaluation).
  "train_spread":    env-steps/s of what ``rlx train ppo --seeds 1`` runs: 500k steps spread
                     over one host device per core, with the final evaluation.
Writes experiments/results/ab_rollout.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VARIANTS = [(stack, carry) for stack in ("gymnax_step", "rlx_autoreset") for carry in ("leaves", "packed")]


def measure(mode: str, rounds: int) -> dict:
    if mode == "train_spread":
        from rlx.parallel import use_all_cpu_cores
        use_all_cpu_cores()
    import gymnax
    import jax
    import jax.numpy as jnp

    from rlx import envs, packing
    from rlx.agents import ppo
    from rlx.parallel import shard_runs, vmap_runs
    from rlx.run import make_train

    packed_scan = packing.scan
    gym, env_params = gymnax.make("CartPole-v1")
    stacks = {"gymnax_step": envs.EpisodeStats(gym),
              "rlx_autoreset": envs.EpisodeStats(envs.AutoReset(envs.GymnaxNoReset(gym)))}
    calls = {}
    for stack, carry in VARIANTS:
        # PPO looks packing.scan up when it traces, so this picks the loop for this compile only.
        packing.scan = packed_scan if carry == "packed" else (lambda f, c, xs: jax.lax.scan(f, c, xs))
        agent = ppo.make(ppo.PPOConfig(total_timesteps=500_000), stacks[stack], env_params)
        hp = agent.default_hparams()
        if mode == "update_1_device":
            state = jax.jit(agent.init)(jax.random.PRNGKey(0), hp)
            loop = jax.jit(lambda s, hp, agent=agent: jax.lax.fori_loop(0, 100, lambda i, s: agent.update(s, hp)[0], s))
            fn, args = loop.lower(state, hp).compile(), (state, hp)
        else:
            train = vmap_runs(make_train(agent, eval_every=agent.num_iterations, eval_episodes=128), 1)
            args = (jax.random.split(jax.random.PRNGKey(0), 1),
                    jax.tree.map(lambda x: jnp.broadcast_to(x, (1,) + jnp.shape(x)), hp))
            fn, _ = shard_runs(train, 1, parts=agent.parts)
            fn.compile(*args)
        jax.block_until_ready(fn(*args))  # warm-up
        calls[f"{stack}+{carry}"] = (fn, args, agent.steps_per_iteration * agent.num_iterations)
    packing.scan = packed_scan
    raw = {name: [] for name in calls}
    for _ in range(rounds):
        for name, (fn, args, steps) in calls.items():
            t0 = time.perf_counter()
            jax.block_until_ready(fn(*args))
            dt = time.perf_counter() - t0
            raw[name].append(dt / 100 * 1e3 if mode == "update_1_device" else steps / dt)
    unit = "ms_per_iteration" if mode == "update_1_device" else "env_steps_per_s"
    return {"unit": unit, "raw": raw, "median": {name: statistics.median(v) for name, v in raw.items()},
            "loadavg_after": os.getloadavg()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["update_1_device", "train_spread"])
    ap.add_argument("--rounds", type=int, default=8)
    args = ap.parse_args()
    if args.mode:
        print("RESULT " + json.dumps(measure(args.mode, args.rounds)))
        return
    import jax
    results = {"load_before": os.getloadavg(), "jax": jax.__version__, "rounds": args.rounds}
    for mode in ("update_1_device", "train_spread"):
        p = subprocess.run([sys.executable, __file__, "--mode", mode, "--rounds", str(args.rounds)],
                           capture_output=True, text=True, cwd=ROOT, check=True)
        results[mode] = json.loads([line for line in p.stdout.splitlines() if line.startswith("RESULT ")][0][7:])
        base = results[mode]["median"]["gymnax_step+leaves"]
        print(mode, results[mode]["unit"], " | ".join(f"{k} {v:,.2f} ({v / base:.2f}x)"
                                                      for k, v in results[mode]["median"].items()), flush=True)
    with open(os.path.join(ROOT, "experiments", "results", "ab_rollout.json"), "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()

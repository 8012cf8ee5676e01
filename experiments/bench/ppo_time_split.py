"""Where one PPO iteration's time goes when a single run is spread over the two cores.

    .venv/bin/python experiments/bench/ppo_time_split.py              # 5 rounds, ~7 min
    .venv/bin/python experiments/bench/ppo_time_split.py --rounds 3

``rlx train ppo --seeds 1`` runs the rollout on both devices and fits the actor on one and the
critic on the other (``rlx.parallel.spread``), so an iteration costs the rollout plus the slower
of the two fits. This script times that program (the benchmark's CartPole config, 200k steps,
no evaluation to speak of) in four variants that differ only in which networks are fitted:

  both      the default: actor on device 0, critic on device 1
  actor     the actor only; the critic's device idles (the critic keeps zero parameters)
  critic    the critic only; the actor's device idles
  none      no fit at all: the rollout and the exchange (what XLA keeps of the rest)

plus ``both_1_device``, the same run as one XLA program on one device. The variants wrap
``rlx.parallel.spread`` so that a network left out returns zeros instead of its fit; their
training results are meaningless, only their times matter. It also times the fit's dominant matmul shape,
[128, 64] @ [64, 64] (a minibatch through a 64-wide hidden layer), as a chain on one core, and
takes XLA's FLOP count of one minibatch gradient step of each network, so the fits' times can be
compared with what one core's matmul rate allows. Each measurement is a fresh process; rounds
interleave the variants. Writes experiments/results/ppo_time_split.json.
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
VARIANTS = ("both", "actor", "critic", "none", "both_1_device")
STEPS = 200_000


def _fit_only(fitted: tuple):
    """``rlx.parallel.spread`` as it is, except that only the networks in ``fitted`` are fitted.

    Every other network's result comes back as zeros, so a device whose part is not fitted idles.
    """
    import jax
    import jax.numpy as jnp

    from rlx import parallel

    spread = parallel.spread

    def spread_fitting_only(fn, names):
        shapes = {name: jax.eval_shape(lambda: fn((name,))[name]) for name in names}

        def fn_only(group):
            kept = tuple(name for name in group if name in fitted)
            out = fn(kept) if kept else {}
            return {name: out[name] if name in kept else jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                                                                        shapes[name]) for name in group}

        return spread(fn_only, names)

    return spread_fitting_only


def measure(variant: str, _setting: str) -> dict:
    """ms per iteration (median of 9 runs of the program) for one variant."""
    from rlx.parallel import use_all_cpu_cores
    if variant != "both_1_device":
        use_all_cpu_cores()
    import jax

    from rlx.agents import ppo

    if variant in ("actor", "critic", "none"):
        ppo.parallel.spread = _fit_only(() if variant == "none" else (variant,))
    agent, call, args, devices, compile_s = ab_rounds.compile_ppo_cartpole_one_seed(STEPS, eval_episodes=1)
    run_s = []
    for _ in range(9):
        t0 = time.perf_counter()
        jax.block_until_ready(call(*args))
        run_s.append(time.perf_counter() - t0)
    ms = [1e3 * s / agent.num_iterations for s in run_s]
    return {"variant": variant, "devices": len(devices), "compile_s": compile_s,
            "ms_per_iteration": statistics.median(ms), "ms_per_iteration_runs": ms}


def one_core_matmul_rate() -> dict:
    """GFLOP/s of a chain of [128, 64] @ [64, 64] matmuls, the fit's hidden-layer shape, on one core.

    Run in its own process: it pins itself to one core before jax starts.
    """
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    import jax
    import jax.numpy as jnp

    w = jnp.linalg.qr(jax.random.normal(jax.random.PRNGKey(0), (64, 64)))[0]  # orthogonal: x keeps its norm
    x = jax.random.normal(jax.random.PRNGKey(1), (128, 64))
    steps = 4000
    chain = jax.jit(lambda x: jax.lax.fori_loop(0, steps, lambda _, x: x @ w, x))
    jax.block_until_ready(chain(x))
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        jax.block_until_ready(chain(x))
        times.append(time.perf_counter() - t0)
    us = 1e6 * statistics.median(times) / steps
    return {"shape": "[128,64]@[64,64]", "us_per_matmul": us, "gflops_per_s": 2 * 128 * 64 * 64 / us / 1e3}


def minibatch_flops() -> dict:
    """XLA-counted FLOPs of one minibatch gradient step of each network (bench_ppo.py's losses)."""
    import jax
    import jax.numpy as jnp

    from bench_ppo import minibatch_losses, xla_flops  # beside this script
    from rlx import envs, nets, objectives
    from rlx.agents import ppo

    config = ppo.PPOConfig()
    spec = envs.spec(*envs.make("CartPole-v1"))
    actor, critic, actor_loss, critic_loss = minibatch_losses(nets, objectives, config, spec)
    mb = config.num_envs * config.num_steps // config.num_minibatches
    obs, z = jnp.zeros((mb,) + spec.obs_shape), jnp.zeros(mb)
    key, obs1 = jax.random.PRNGKey(0), jnp.zeros(spec.obs_shape)
    return {"actor": xla_flops(jax, jax.grad(actor_loss), actor.init(key, obs1), obs, jnp.zeros(mb, jnp.int32), z, z),
            "critic": xla_flops(jax, jax.grad(critic_loss), critic.init(key, obs1), obs, z, z),
            "minibatch_steps_per_iteration": config.update_epochs * config.num_minibatches,
            "env_steps_per_iteration": config.num_envs * config.num_steps}

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default=os.path.join(ROOT, "experiments", "results", "ppo_time_split.json"))
    ap.add_argument("--one", nargs=2, metavar=("VARIANT", "SETTING"), help=argparse.SUPPRESS)
    ap.add_argument("--matmul", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.matmul:
        print(json.dumps(one_core_matmul_rate()))
        return
    if args.one:
        print(json.dumps(measure(*args.one)))
        return
    import matmul_ceiling  # beside this script

    rows = ab_rounds.interleaved(__file__, VARIANTS, ("cartpole",), args.rounds)
    med = {v: statistics.median(x["ms_per_iteration"] for x in rows if x["variant"] == v) for v in VARIANTS}
    rate = json.loads(subprocess.run([sys.executable, __file__, "--matmul"], capture_output=True, text=True,
                                     check=True).stdout.strip().splitlines()[-1])
    flops = minibatch_flops()
    fit_ms = {name: med[name] - med["none"] for name in ("actor", "critic")}
    # The fit's time if every FLOP ran at the one-core rate of its hidden-layer matmul.
    at_rate_ms = {name: flops[name] * flops["minibatch_steps_per_iteration"] / (rate["gflops_per_s"] * 1e9) * 1e3
                  for name in ("actor", "critic")}
    summary = {
        "ms_per_iteration_median": med,
        "fit_ms_per_iteration": fit_ms,
        "fit_ms_per_iteration_at_one_core_matmul_rate": at_rate_ms,
        "env_steps_per_s_default": flops["env_steps_per_iteration"] / med["both"] * 1e3,
        "env_steps_per_s_if_fits_were_free": flops["env_steps_per_iteration"] / med["none"] * 1e3,
    }
    out = {"rounds": args.rounds, "steps": STEPS, "cpu": matmul_ceiling.cpu_description(), "summary": summary,
           "one_core_matmul": rate, "minibatch_step_flops": flops, "rows": rows}
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
    print(json.dumps(out["summary"] | {"one_core_matmul": rate, "minibatch_step_flops": flops}, indent=2))


if __name__ == "__main__":
    main()

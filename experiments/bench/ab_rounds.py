"""Interleaved A/B rounds for the bench's ab_*.py scripts: every measurement a fresh process.

A script measures one (variant, setting) when called as ``script --one VARIANT SETTING`` and prints
a JSON object as its last line. ``interleaved`` runs every setting's variants once per round, in
alternating order (no order bias), with no compilation cache and no XLA_FLAGS from the caller.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def interleaved(script: str, variants, settings, rounds: int) -> list[dict]:
    """Rows ``{"round": r, **measurement}``, printing each one's compile seconds as it lands."""
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_COMPILATION_CACHE_DIR", "XLA_FLAGS")}
    rows = []
    for r in range(rounds):
        for setting in settings:
            for variant in (variants if r % 2 == 0 else variants[::-1]):
                out = subprocess.run([sys.executable, script, "--one", variant, str(setting)], cwd=ROOT, env=env,
                                     capture_output=True, text=True, check=True).stdout
                rows.append({"round": r, **json.loads(out.strip().splitlines()[-1])})
                print(f"round {r} {setting} {variant:16s} compile {rows[-1]['compile_s']:.2f} s", flush=True)
    return rows


def alternating(variants, rounds: int, run) -> dict:
    """``{variant: [seconds per round]}``: ``run(variant)`` timed once per round, in one process,
    the variants in alternating order (no order bias)."""
    import time

    seconds = {v: [] for v in variants}
    for r in range(rounds):
        for v in (variants if r % 2 == 0 else variants[::-1]):
            t0 = time.perf_counter()
            run(v)
            seconds[v].append(time.perf_counter() - t0)
    return seconds


def write_results(results: dict, path: str) -> None:
    """Stamp the load average after the runs on ``results`` and write it as JSON."""
    results["loadavg_after"] = os.getloadavg()
    with open(path, "w") as f:
        json.dump(results, f, indent=2)


def compile_ppo_cartpole_one_seed(total_timesteps: int, eval_episodes: int):
    """The PPO CartPole bench program (bench_ppo.py's config) for one seed, laid out as
    ``rlx train ppo --seeds 1`` lays it out (``rlx.parallel.shard_runs``) and compiled.

    Returns ``(agent, call, args, devices, compile_s)``: ``call(*args)`` runs it; compile_s
    times trace, lower and XLA compile. Call ``rlx.parallel.use_all_cpu_cores`` first for the
    spread program.
    """
    import time

    import jax
    import jax.numpy as jnp

    from rlx import envs
    from rlx.agents import ppo
    from rlx.parallel import shard_runs, vmap_runs
    from rlx.run import make_train

    env, env_params = envs.make("CartPole-v1")
    agent = ppo.make(ppo.PPOConfig(total_timesteps=total_timesteps), env, env_params)
    hp = jax.tree.map(lambda x: jnp.asarray(x)[None], agent.default_hparams())
    train = vmap_runs(make_train(agent, eval_every=agent.num_iterations, eval_episodes=eval_episodes), 1)
    args = (jax.random.split(jax.random.PRNGKey(0), 1), hp)
    t0 = time.perf_counter()
    call, devices = shard_runs(train, 1, parts=agent.parts)
    call.compile(*args)
    return agent, call, args, devices, time.perf_counter() - t0


def compile_offpolicy_pendulum(agent_name: str, iterations: int):
    """The SAC or TD3 Pendulum bench configuration (256×256, batch 256, one update per env step)
    on one XLA device: ``iterations`` learning iterations past the warm-up, compiled as one program.

    Returns ``(program, args, compile_s)``; ``program(*args)`` runs them. Module-level switches
    read while tracing (``rlx.nets``, ``rlx.critics``) take effect if set before the call.
    """
    import time

    import jax
    import numpy as np

    from rlx import envs
    from rlx.agents import sac, td3
    from rlx.run import make_chunks

    env, env_params = envs.make("Pendulum-v1")
    module = {"sac": sac, "td3": td3}[agent_name]
    config = module.Config(total_timesteps=20_000, hidden=(256, 256), batch_size=256, learning_starts=1000)
    agent = module.make(config, env, env_params)
    hp = agent.default_hparams()
    prog = make_chunks(agent, eval_episodes=0)
    advance = jax.jit(prog.advance, static_argnums=3)
    warmup = -(-config.learning_starts // config.train_freq)
    carry, _ = advance(jax.jit(prog.init)(jax.random.PRNGKey(0), hp), hp, np.int32(0), warmup)
    t0 = time.perf_counter()
    program = advance.lower(carry, hp, np.int32(warmup), iterations).compile()
    compile_s = time.perf_counter() - t0
    args = (carry, hp, np.int32(warmup))
    jax.block_until_ready(program(*args))  # warm-up run
    return program, args, compile_s

"""rejax anchor: time rejax PPO (CartPole-v1) or SAC (Pendulum-v1) on this machine.

Run with the rejax venv made by setup_anchors.sh (rejax is used only through its
public API; nothing from it is copied into rlx):

    experiments/bench/.venv-rejax/bin/python experiments/bench/anchor_rejax.py \
        --algo ppo --seeds 1 --steps 500000 \
        --out experiments/results/anchors/rejax_ppo_cartpole_s1.json

Measured:
  compile_s        wall time of jax.jit(fn).lower(keys).compile()
  run_s            wall times of the compiled function (block_until_ready),
                   --repeats of them; run_s_median is their median. A run
                   includes rejax's single evaluation at the end (128 episodes).
  env_steps_per_s  seeds * steps / run_s_median
  final_return     per seed: mean episode return of rejax's final evaluation
                   (128 episodes, actions sampled from the policy as rejax does)
  flops            XLA's compiled.cost_analysis()["flops"] if available. NB: XLA
                   counts the body of a while loop (fori_loop/scan) once, not
                   times its trip count, so this is not the total work done.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from importlib import metadata

import jax
import jax.numpy as jnp
import numpy as np
import rejax


DEFAULT_STEPS = {"ppo": 500_000, "sac": 20_000}
ENV = {"ppo": "CartPole-v1", "sac": "Pendulum-v1"}


def ppo_config(steps: int) -> dict:
    num_envs, num_steps = 4, 128
    num_epochs, num_minibatches = 4, 4
    lr0 = 2.5e-4
    # rejax's OnPolicyMixin runs ceil(eval_freq / (num_envs*num_steps)) iterations.
    num_iterations = math.ceil(steps / (num_envs * num_steps))
    updates_per_iter = num_epochs * num_minibatches

    # Linear annealing to 0 over training, stepped once per iteration like CleanRL
    # (lr = lr0 * (1 - (iteration-1)/num_iterations)) and SB3's linear schedule.
    # Actor and critic have separate optax optimizers in rejax; each sees one
    # update per minibatch, so `count // updates_per_iter` is the iteration index.
    def lr_schedule(count):
        it = (count // updates_per_iter).astype(jnp.float32)
        return lr0 * (1.0 - it / num_iterations)

    return dict(
        env=ENV["ppo"],
        num_envs=num_envs,
        num_steps=num_steps,
        num_epochs=num_epochs,
        num_minibatches=num_minibatches,
        # PPO reads network settings from agent_kwargs.
        agent_kwargs={"activation": "tanh", "hidden_layer_sizes": (64, 64)},
        learning_rate=lr_schedule,
        gamma=0.99,
        gae_lambda=0.95,
        clip_eps=0.2,
        ent_coef=0.01,
        vf_coef=0.5,
        max_grad_norm=0.5,
        total_timesteps=steps,
        eval_freq=steps,  # exactly one evaluation, at the end
        skip_initial_evaluation=True,
        normalize_observations=False,
        normalize_rewards=False,
    ), {
        "num_iterations": num_iterations,
        "steps_actual": num_iterations * num_envs * num_steps,
        "learning_rate": f"linear {lr0} -> 0, stepped per iteration",
    }


def sac_config(steps: int) -> dict:
    return dict(
        env=ENV["sac"],
        # SAC reads hidden_layer_sizes at the TOP LEVEL of create(); inside
        # agent_kwargs it is silently ignored (-> default 64x64).
        hidden_layer_sizes=(256, 256),
        agent_kwargs={"activation": "relu"},
        num_envs=1,
        num_epochs=1,  # gradient updates per env step (per iteration of 1 env)
        batch_size=256,
        fill_buffer=1_000,  # ~ SB3 learning_starts=1000
        buffer_size=131_072,
        learning_rate=3e-4,
        gamma=0.99,
        polyak=0.995,  # target <- 0.995*target + 0.005*online  (SB3 tau=0.005)
        target_update_freq=1,
        target_entropy_ratio=0.98,  # only used for discrete actions
        total_timesteps=steps,
        eval_freq=steps,
        skip_initial_evaluation=True,
        normalize_observations=False,
        normalize_rewards=False,
    ), {"steps_actual": steps, "learning_rate": "constant 3e-4"}


def _jsonable(x):
    if callable(x):
        return getattr(x, "__name__", repr(x))
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ["rejax", "gymnax", "jax", "jaxlib", "flax", "optax", "distrax",
                "chex", "numpy"]:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def _flops(compiled):
    try:
        ca = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 - backend may not implement it
        return None
    if isinstance(ca, (list, tuple)):
        ca = ca[0] if ca else None
    if not ca:
        return None
    f = ca.get("flops")
    return float(f) if f is not None else None


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--algo", choices=["ppo", "sac"], required=True)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--steps", type=int, default=None,
                   help="total env steps per seed (default: ppo 500000, sac 20000)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0, help="base PRNG seed")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    steps = args.steps or DEFAULT_STEPS[args.algo]
    config, extra = (ppo_config if args.algo == "ppo" else sac_config)(steps)
    algo_cls = rejax.PPO if args.algo == "ppo" else rejax.SAC
    algo = algo_cls.create(**config)

    if args.seeds > 1:
        keys = jax.random.split(jax.random.PRNGKey(args.seed), args.seeds)
        fn = jax.jit(jax.vmap(algo.train))
    else:
        keys = jax.random.PRNGKey(args.seed)
        fn = jax.jit(algo.train)

    load_before = os.getloadavg()
    t0 = time.perf_counter()
    lowered = fn.lower(keys)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    compile_s = t2 - t0

    run_s = []
    evaluation = None
    for _ in range(args.repeats):
        t = time.perf_counter()
        ts, evaluation = compiled(keys)
        jax.block_until_ready((ts, evaluation))
        run_s.append(time.perf_counter() - t)
    run_med = statistics.median(run_s)
    load_after = os.getloadavg()

    # evaluation = (episode_lengths, episode_returns), each [num_evals, 128]
    # (with a leading seed axis when vmapped). Take the last evaluation.
    _, returns = evaluation
    returns = np.asarray(returns)
    if args.seeds == 1:
        returns = returns[None]
    final_return = returns[:, -1, :].mean(axis=-1).tolist()

    result = {
        "framework": "rejax",
        "algo": args.algo,
        "env": ENV[args.algo],
        "seeds": args.seeds,
        "steps": steps,
        "compile_s": compile_s,
        "lower_s": t1 - t0,
        "run_s": run_s,
        "run_s_median": run_med,
        "env_steps_per_s": args.seeds * steps / run_med,
        "final_return": final_return,
        "flops": _flops(compiled),
        "versions": _versions(),
        "config": _jsonable({**config, **extra}),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "jax_backend": jax.default_backend(),
                    "loadavg_before": load_before, "loadavg_after": load_after},
        "argv": sys.argv,
    }
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    summary = {k: result[k] for k in ("framework", "algo", "seeds", "steps", "compile_s",
                                      "run_s_median", "env_steps_per_s", "final_return")}
    print(json.dumps(summary))
    return result


if __name__ == "__main__":
    main()

"""Stable-Baselines3 anchor: time SB3 PPO (CartPole-v1) or SAC (Pendulum-v1) on CPU.

Run with the sb3 venv made by setup_anchors.sh (SB3 is used only through its
public API):

    experiments/bench/.venv-sb3/bin/python experiments/bench/anchor_sb3.py \
        --algo ppo --envs 4 --steps 50000 \
        --out experiments/results/anchors/sb3_ppo_cartpole_50k.json

Measured:
  run_s / run_s_median  wall seconds of model.learn(total_timesteps=steps)
                        (one run; model construction and evaluation excluded)
  env_steps_per_s       steps / run_s_median
  final_return          mean return of 10 deterministic evaluation episodes at the end
  compile_s             0 (nothing is compiled)
torch's thread count is left at its default and recorded (torch_num_threads);
--torch-threads N overrides it. NB: with the default (2 on this machine) SB3's
small-batch torch ops are ~2x slower than with 1 thread, and >10x slower when
another process is busy on the other core (OpenMP threads spin-waiting).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from importlib import metadata

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor


DEFAULT_STEPS = {"ppo": 500_000, "sac": 20_000}
ENV = {"ppo": "CartPole-v1", "sac": "Pendulum-v1"}
PPO_LR0 = 2.5e-4


def ppo_lr(progress_remaining: float) -> float:
    """Linear schedule 2.5e-4 -> 0 (SB3 calls it with 1 - progress, per rollout)."""
    return PPO_LR0 * progress_remaining


def make_ppo(n_envs: int, seed: int):
    n_steps = 128
    num_minibatches = 4
    env = make_vec_env(ENV["ppo"], n_envs=n_envs, seed=seed)  # DummyVecEnv
    cfg = dict(
        n_steps=n_steps,
        batch_size=n_envs * n_steps // num_minibatches,  # 4*128/4 = 128
        n_epochs=4,
        learning_rate=ppo_lr,
        gamma=0.99,
        gae_lambda=0.95,
        clip_range=0.2,
        # rejax (like CleanRL) also clips the value update with clip_eps.
        clip_range_vf=0.2,
        ent_coef=0.01,
        vf_coef=0.5,
        max_grad_norm=0.5,
        normalize_advantage=True,
        policy_kwargs=dict(net_arch=dict(pi=[64, 64], vf=[64, 64]),
                           activation_fn=torch.nn.Tanh),
    )
    model = PPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **cfg)
    cfg_rec = {**cfg, "n_envs": n_envs, "learning_rate": f"linear {PPO_LR0} -> 0",
               "policy_kwargs": {"net_arch": {"pi": [64, 64], "vf": [64, 64]},
                                 "activation_fn": "Tanh"}}
    return model, cfg_rec


def make_sac(n_envs: int, seed: int):
    env = make_vec_env(ENV["sac"], n_envs=n_envs, seed=seed)
    cfg = dict(
        batch_size=256,
        train_freq=1,
        gradient_steps=1,
        learning_starts=1_000,
        buffer_size=1_000_000,
        learning_rate=3e-4,
        gamma=0.99,
        tau=0.005,
        ent_coef="auto",
        policy_kwargs=dict(net_arch=[256, 256]),
    )
    model = SAC("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **cfg)
    return model, {**cfg, "n_envs": n_envs}


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ["stable_baselines3", "torch", "gymnasium", "numpy"]:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--algo", choices=["ppo", "sac"], required=True)
    p.add_argument("--envs", type=int, default=None,
                   help="parallel envs (default: ppo 4, sac 1)")
    p.add_argument("--steps", type=int, default=None,
                   help="total env steps (default: ppo 500000, sac 20000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--torch-threads", type=int, default=None,
                   help="torch.set_num_threads(N); default: leave torch's default")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    load_before = os.getloadavg()

    steps = args.steps or DEFAULT_STEPS[args.algo]
    n_envs = args.envs or (4 if args.algo == "ppo" else 1)
    model, cfg = (make_ppo if args.algo == "ppo" else make_sac)(n_envs, args.seed)

    t = time.perf_counter()
    model.learn(total_timesteps=steps, progress_bar=False)
    run_s = [time.perf_counter() - t]
    run_med = statistics.median(run_s)
    load_after = os.getloadavg()

    eval_env = Monitor(gym.make(ENV[args.algo]))
    eval_env.reset(seed=args.seed + 10_000)
    ep_returns, ep_lengths = evaluate_policy(
        model, eval_env, n_eval_episodes=args.eval_episodes, deterministic=True,
        return_episode_rewards=True,
    )
    final_return = float(np.mean(ep_returns))

    result = {
        "framework": "sb3",
        "algo": args.algo,
        "env": ENV[args.algo],
        "seeds": 1,
        "steps": steps,
        "steps_actual": int(model.num_timesteps),
        "envs": n_envs,
        "compile_s": 0.0,
        "run_s": run_s,
        "run_s_median": run_med,
        "env_steps_per_s": steps / run_med,
        "final_return": [final_return],
        "eval_episode_returns": [float(r) for r in ep_returns],
        "flops": None,
        "torch_num_threads": torch.get_num_threads(),
        "versions": _versions(),
        "config": cfg,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "loadavg_before": load_before, "loadavg_after": load_after},
        "argv": sys.argv,
    }
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    summary = {k: result[k] for k in ("framework", "algo", "steps", "run_s_median",
                                      "env_steps_per_s", "final_return",
                                      "torch_num_threads")}
    print(json.dumps(summary))
    return result


if __name__ == "__main__":
    main()

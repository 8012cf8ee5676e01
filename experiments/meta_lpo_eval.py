"""Evaluate a learned objective against ppo_clip and dpo on a held-out env; plot its drift surface.

    python experiments/meta_lpo_eval.py --objective experiments/results/meta_lpo/objective.npz \
        --out experiments/results/meta_lpo --env Breakout-MinAtar --steps 300000 --seeds 8

Each objective trains PPO with the same config, hyperparameters and seeds (PRNGKey(0..7)),
the 8 seeds vmapped and sharded over the host cores. eval.json holds the per-seed final
deterministic returns (8 episodes after the last iteration), mean ± std, median, and a
Welch t-test of learned vs each baseline.

MinAtar observations are 10×10×C images; rlx's MLP torso does not flatten multi-dimensional
observations (as of this writing), so this script flattens them with a small wrapper.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


class FlattenObservation:
    """Gymnax-protocol wrapper: observations (and info["final_observation"]) flattened to 1-D."""

    def __init__(self, env):
        self._env = env

    def __getattr__(self, name):
        return getattr(self._env, name)

    def reset(self, key, params=None):
        obs, state = self._env.reset(key, params)
        return obs.reshape(-1), state

    def step(self, key, state, action, params=None):
        obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params)
        info = dict(info)
        if "final_observation" in info:
            info["final_observation"] = info["final_observation"].reshape(-1)
        return obs.reshape(-1), state, reward, terminated, truncated, info

    def observation_space(self, params):
        from gymnax.environments import spaces

        space = self._env.observation_space(params)
        n = int(np.prod(space.shape))
        return spaces.Box(np.float32(np.min(space.low)), np.float32(np.max(space.high)), (n,), space.dtype)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--objective", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--env", default="Breakout-MinAtar")
    p.add_argument("--steps", type=int, default=300_000)
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--baselines", default="ppo_clip,dpo")
    p.add_argument("--num-envs", type=int, default=16)
    p.add_argument("--num-steps", type=int, default=64)
    p.add_argument("--skip-plot", action="store_true")
    p.add_argument("--grad-clip", default="global", choices=["per_network", "global"])
    args = p.parse_args()

    from rlx.parallel import use_all_cpu_cores

    use_all_cpu_cores()
    import jax

    from rlx import envs, meta, objectives
    from rlx.agents import ppo
    from rlx.parallel import shard_runs
    from rlx.run import make_train

    if not args.skip_plot:
        meta.plot_drift_surface(os.path.join(args.out, "drift_surface.png"), objectives.load(args.objective),
                                title=f"learned drift ({os.path.basename(args.objective)}) vs PPO-clip and DPO",
                                compare=("ppo", "dpo"))
    env, env_params = envs.make(args.env)
    if len(envs.spec(env, env_params).obs_shape) > 1:
        env = FlattenObservation(env)
    # grad_clip="global": the setting the committed meta-learning results were made with (the
    # meta-training scripts pass --ppo grad_clip=global too).
    config = ppo.PPOConfig(total_timesteps=args.steps, num_envs=args.num_envs, num_steps=args.num_steps,
                           update_epochs=4, num_minibatches=4, grad_clip=args.grad_clip)
    keys = jax.numpy.stack([jax.random.PRNGKey(s) for s in range(args.seeds)])
    results = {}
    for name in ["learned"] + args.baselines.split(","):
        surrogate = objectives.load(args.objective) if name == "learned" else objectives.get(name)
        agent = ppo.make(config, env, env_params, objective=surrogate)
        hp = agent.default_hparams()
        train = make_train(agent, eval_every=agent.num_iterations, eval_episodes=8)
        hp_batch = jax.tree.map(lambda x: jax.numpy.stack([x] * args.seeds), hp)
        call, devices = shard_runs(jax.vmap(train), args.seeds)
        t0 = time.perf_counter()
        call.compile(keys, hp_batch)
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        _, metrics = call(keys, hp_batch)
        final = np.asarray(metrics["eval/return"])[:, -1].astype(float)
        wall = time.perf_counter() - t0
        last_train = np.asarray(metrics["episode_return"], float)
        last_train = [float(r[np.isfinite(r)][-10:].mean()) if np.isfinite(r).any() else None for r in last_train]
        results[name] = {"objective": args.objective if name == "learned" else name, "final_return": final.tolist(),
                         "mean": float(final.mean()), "std": float(final.std(ddof=1)),
                         "median": float(np.median(final)), "train_return_last10_iters": last_train,
                         "compile_s": round(compile_s, 2), "wall_s": round(wall, 2),
                         "env_steps_per_s": round(args.seeds * agent.num_iterations * agent.steps_per_iteration / wall)}
        print(f"{name:10s} mean {final.mean():.3f} ± {final.std(ddof=1):.3f}  median {np.median(final):.3f} "
              f"({wall:.0f} s)", flush=True)
    from scipy import stats

    for b in args.baselines.split(","):
        t = stats.ttest_ind(results["learned"]["final_return"], results[b]["final_return"], equal_var=False)
        results["learned"][f"welch_t_vs_{b}"] = {"t": float(t.statistic), "p": float(t.pvalue)}
    out = {"env": args.env, "held_out": True, "env_steps_per_run": args.steps, "seeds": args.seeds,
           "ppo_config": {"num_envs": args.num_envs, "num_steps": args.num_steps, "update_epochs": 4,
                          "num_minibatches": 4, "hidden": [64, 64], "other hparams": "ppo.default_hparams()"},
           "metric": "final deterministic evaluation return (mean of 8 episodes) after the last iteration",
           "results": results}
    with open(os.path.join(args.out, "eval.json"), "w") as f:
        json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()

"""Offline RL on rlx's generated datasets: IQL, CQL, TD3+BC, AWAC, f-DVL (χ², TV) and XQL, 5 seeds each.

    .venv/bin/python experiments/offline.py --env Pendulum-v1 [--steps 3000] [--seeds 5]
    .venv/bin/python experiments/offline.py --env brax:hopper --steps 20000   # after experiments/make_hopper_data.py

Datasets (random, medium, medium-replay, expert) come from ``rlx.collect.make_datasets``
(seed 0): for Pendulum-v1 20k transitions each, made here and saved under
experiments/results/offline_pendulum/data/; for brax:hopper, made by
experiments/make_hopper_data.py. Every agent × dataset runs its seeds as one vmapped
program, sharded over the cores. Writes results.json (normalised scores per seed, mean ± std;
re-running skips the cells already there) and scores.png. ``--agents`` picks a subset.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import time

from rlx.parallel import use_all_cpu_cores

use_all_cpu_cores()  # before jax starts: one XLA device per core, seeds sharded over them

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from rlx import collect, data, envs  # noqa: E402
from rlx.agents import dual  # noqa: E402
from rlx.offline_cli import OFFLINE  # noqa: E402
from rlx.parallel import shard_runs  # noqa: E402
from rlx.run import evaluate, make_train  # noqa: E402

RESULTS = os.path.join(os.path.dirname(__file__), "results")
TIERS = ("random", "medium", "medium-replay", "expert")
RUN_ORDER = ("medium", "medium-replay", "expert", "random")  # the informative tiers first
# label -> CLI agent name (":divergence" for the dual-V family)
AGENTS = {"IQL": "iql", "CQL": "cql", "CQL-Lagrange": "cql+lagrange", "TD3+BC": "td3bc", "AWAC": "awac", "f-DVL χ²": "fdvl:chi2",
          "f-DVL TV": "fdvl:tv", "XQL": "xql"}
ENVS = {"Pendulum-v1": ("offline_pendulum", "pendulum", {}),
        # IQL's locomotion settings: standardised observations, rewards scaled by the episode range.
        "brax:hopper": ("offline_hopper", "hopper", {"normalize_obs": True})}


def zero_action_return(agent, episodes: int = 16) -> float:
    """Mean return of the policy that always acts 0 in ``agent``'s evaluation env: a floor to beat.

    On brax:hopper (positional) doing nothing keeps the hopper standing for the whole episode,
    about 1000 (the healthy reward), so it scores well above our "medium" data.
    """
    zero = dataclasses.replace(agent, act=lambda policy, obs, key, deterministic=True: jnp.zeros(
        (agent.spec.num_actions,), jnp.float32))
    mean, _ = jax.jit(lambda key: evaluate(zero, None, key, num_episodes=episodes))(jax.random.PRNGKey(0))
    return float(mean)


def build(label: str, steps: int, ds, env, params, overrides: dict):
    name, _, divergence = AGENTS[label].partition(":")
    name, _, flag = name.partition("+")  # "cql+lagrange": a boolean config field set
    module = importlib.import_module(OFFLINE[name].module)
    overrides = {**overrides, **({flag: True} if flag else {})}
    config = module.Config(total_steps=steps, steps_per_iteration=500,
                           **{k: v for k, v in overrides.items() if hasattr(module.Config, k)})
    if name in ("iql", "fdvl", "xql"):
        return dual.make(config, ds, env, params, divergence=divergence or {"iql": "expectile", "xql": "xql"}[name])
    return module.make(config, ds, env, params)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--env", default="Pendulum-v1", choices=sorted(ENVS))
    ap.add_argument("--agents", default=",".join(AGENTS), help="comma-separated labels: " + ", ".join(AGENTS))
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--data-steps", type=int, default=20_000)
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=INT",
                    help="override an integer config field of the agents that have it, e.g. "
                         "num_sampled_actions=3 (recorded in results.json)")
    args = ap.parse_args()
    labels = [a.strip() for a in args.agents.split(",")]
    unknown = [a for a in labels if a not in AGENTS]
    if unknown:
        raise SystemExit(f"unknown agents {unknown}; choose from {', '.join(AGENTS)}")
    folder, prefix, overrides = ENVS[args.env]
    sets = dict(item.split("=", 1) for item in args.set)
    overrides = {**overrides, **{k: int(v) for k, v in sets.items()}}
    out = os.path.join(RESULTS, folder)
    os.makedirs(os.path.join(out, "data"), exist_ok=True)
    env, params = envs.make(args.env)
    results = {"steps": args.steps, "seeds": args.seeds, "datasets": {}, "scores": {}}
    saved = os.path.join(out, "results.json")
    if os.path.exists(saved):  # resume: keep the agent × dataset cells already run with these settings
        with open(saved) as f:
            old = json.load(f)
        if old.get("steps") == args.steps and old.get("seeds") == args.seeds:
            results = old
    results["env"] = args.env
    keys = jax.random.split(jax.random.PRNGKey(0), args.seeds)
    path_of = lambda tier: os.path.join(out, "data", f"{prefix}-{tier}.npz")
    missing = [t for t in TIERS if not os.path.exists(path_of(t))]
    if missing:
        for tier, ds in collect.make_datasets(args.env, TIERS, args.data_steps, seed=0).items():
            data.save_npz(ds, path_of(tier))
    if "zero_action" not in results:
        ref = data.load(path_of("medium"))
        ret = zero_action_return(build(labels[0], args.steps, ref, env, params, overrides))
        results["zero_action"] = {"return": ret, "normalized_score": float(ref.normalized_score(ret))}
    for tier in RUN_ORDER:
        ds = data.load(path_of(tier))
        results["datasets"][tier] = {"transitions": len(ds), "episodes": int(len(ds.episode_returns())),
                                     "normalized_score": float(ds.normalized_score(ds.episode_returns()).mean()),
                                     "ref_random_return": ds.metadata.ref_random_return,
                                     "ref_expert_return": ds.metadata.ref_expert_return}
        for label in labels:
            if label in results["scores"].get(tier, {}):
                continue
            agent = build(label, args.steps, ds, env, params, overrides)
            t0 = time.perf_counter()
            call, _ = shard_runs(jax.vmap(make_train(agent, eval_every=agent.num_iterations, eval_episodes=16)),
                                 args.seeds)
            hp = jax.tree.map(lambda x: jnp.broadcast_to(x, (args.seeds,) + jnp.shape(x)), agent.default_hparams())
            _, metrics = call(keys, hp)
            final = np.asarray(metrics["eval/return"])[:, -1]
            scores = ds.normalized_score(final)
            results["scores"].setdefault(tier, {})[label] = {
                "config": {k: v for k, v in overrides.items() if hasattr(agent.config, k)},
                "normalized_score": scores.tolist(), "mean": float(scores.mean()), "std": float(scores.std()),
                "final_return": final.tolist(), "wall_s": time.perf_counter() - t0}
            print(f"{tier:14s} {label:9s} {scores.mean():7.1f} ± {scores.std():5.1f}   "
                  f"(data {results['datasets'][tier]['normalized_score']:.1f})", flush=True)
            with open(saved, "w") as f:
                json.dump(results, f, indent=2)
    plot(results, out)


def plot(results, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4), dpi=120)
    tiers = [t for t in TIERS if t in results["scores"]]
    names = ["data"] + [a for a in AGENTS if any(a in results["scores"][t] for t in tiers)]
    width = 0.8 / len(names)
    for j, name in enumerate(names):
        xs = np.arange(len(tiers)) + (j - (len(names) - 1) / 2) * width
        if name == "data":
            ax.bar(xs, [results["datasets"][t]["normalized_score"] for t in tiers], width, color="0.7", label="dataset")
        else:
            m = [results["scores"][t].get(name, {}).get("mean", np.nan) for t in tiers]
            s = [results["scores"][t].get(name, {}).get("std", np.nan) for t in tiers]
            ax.bar(xs, m, width, yerr=s, capsize=2, label=name)
    ax.set_xticks(np.arange(len(tiers)), tiers)
    ax.set_ylabel("normalised score")
    ax.set_title(f"{results.get('env', 'Pendulum-v1')} offline, {results['steps']} gradient steps, {results['seeds']} seeds (mean ± std)")
    ax.axhline(0, color="k", lw=0.5)
    if "zero_action" in results:
        ax.axhline(results["zero_action"]["normalized_score"], color="k", ls="--", lw=0.8, label="zero action")
    ax.legend(fontsize=7, ncol=4)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "scores.png"))


if __name__ == "__main__":
    main()

"""Offline RL on generated Pendulum-v1 datasets: IQL, f-DVL (χ², TV) and XQL, 5 seeds each.

    .venv/bin/python experiments/offline_pendulum.py [--steps 5000] [--seeds 5]

Datasets (random, medium, medium-replay, expert; 20k transitions) come from
``rlx.collect.make_dataset`` (seed 0) and are saved under
experiments/results/offline_pendulum/data/. Every agent × dataset runs its seeds as one
vmapped program. Writes results.json (normalised scores per seed, mean ± std) and a bar plot.
"""
from __future__ import annotations

import argparse
import json
import os
import time

from rlx.parallel import use_all_cpu_cores

use_all_cpu_cores()  # before jax starts: one XLA device per core, seeds sharded over them

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from rlx import collect, data, envs  # noqa: E402
from rlx.agents import dual, iql  # noqa: E402
from rlx.parallel import shard_runs  # noqa: E402
from rlx.run import make_train  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "results", "offline_pendulum")
TIERS = ("random", "medium", "medium-replay", "expert")
RUN_ORDER = ("medium", "medium-replay", "expert", "random")  # the informative tiers first
AGENTS = ("expectile", "chi2", "tv", "xql")
LABEL = {"expectile": "IQL", "chi2": "f-DVL χ²", "tv": "f-DVL TV", "xql": "XQL"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--data-steps", type=int, default=20_000)
    args = ap.parse_args()
    os.makedirs(os.path.join(OUT, "data"), exist_ok=True)
    env, params = envs.make("Pendulum-v1")
    results = {"steps": args.steps, "seeds": args.seeds, "datasets": {}, "scores": {}}
    saved = os.path.join(OUT, "results.json")
    if os.path.exists(saved):  # resume: keep the agent × dataset cells already run with these settings
        with open(saved) as f:
            old = json.load(f)
        if old.get("steps") == args.steps and old.get("seeds") == args.seeds:
            results = old
    keys = jax.random.split(jax.random.PRNGKey(0), args.seeds)
    path_of = lambda tier: os.path.join(OUT, "data", f"pendulum-{tier}.npz")
    for tier in ("expert",) + TIERS:  # the expert first: the random tier borrows its reference return
        if not os.path.exists(path_of(tier)):
            ds = collect.make_dataset("Pendulum-v1", tier, args.data_steps, seed=0)
            if tier == "random":
                ds = ds.replace_metadata(ref_expert_return=data.load(path_of("expert")).metadata.ref_expert_return)
            data.save_npz(ds, path_of(tier))
    for tier in RUN_ORDER:
        ds = data.load(path_of(tier))
        results["datasets"][tier] = {"transitions": len(ds), "episodes": int(len(ds.episode_returns())),
                                     "normalized_score": float(ds.normalized_score(ds.episode_returns()).mean()),
                                     "ref_random_return": ds.metadata.ref_random_return,
                                     "ref_expert_return": ds.metadata.ref_expert_return}
        for name in AGENTS:
            if LABEL[name] in results["scores"].get(tier, {}):
                continue
            agent = dual.make(iql.IQLConfig(total_steps=args.steps, steps_per_iteration=500, hidden=(256, 256)),
                              ds, env, params, divergence=name)
            t0 = time.perf_counter()
            call, _ = shard_runs(jax.vmap(make_train(agent, eval_every=agent.num_iterations, eval_episodes=16)),
                                 args.seeds)
            hp = jax.tree.map(lambda x: jnp.broadcast_to(x, (args.seeds,) + jnp.shape(x)), agent.default_hparams())
            _, metrics = call(keys, hp)
            final = np.asarray(metrics["eval/return"])[:, -1]
            scores = ds.normalized_score(final)
            results["scores"].setdefault(tier, {})[LABEL[name]] = {
                "normalized_score": scores.tolist(), "mean": float(scores.mean()), "std": float(scores.std()),
                "final_return": final.tolist(), "wall_s": time.perf_counter() - t0}
            print(f"{tier:14s} {LABEL[name]:9s} {scores.mean():7.1f} ± {scores.std():5.1f}   "
                  f"(data {results['datasets'][tier]['normalized_score']:.1f})", flush=True)
            with open(os.path.join(OUT, "results.json"), "w") as f:
                json.dump(results, f, indent=2)
    plot(results)


def plot(results):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4), dpi=120)
    tiers = [t for t in TIERS if t in results["scores"]]
    width = 0.16
    for j, name in enumerate(["data"] + [LABEL[a] for a in AGENTS]):
        xs = np.arange(len(tiers)) + (j - 2) * width
        if name == "data":
            ax.bar(xs, [results["datasets"][t]["normalized_score"] for t in tiers], width, color="0.7", label="dataset")
        else:
            m = [results["scores"][t].get(name, {}).get("mean", np.nan) for t in tiers]
            s = [results["scores"][t].get(name, {}).get("std", np.nan) for t in tiers]
            ax.bar(xs, m, width, yerr=s, capsize=2, label=name)
    ax.set_xticks(np.arange(len(tiers)), tiers)
    ax.set_ylabel("normalised score")
    ax.set_title(f"Pendulum-v1 offline, {results['steps']} gradient steps, {results['seeds']} seeds (mean ± std)")
    ax.axhline(0, color="k", lw=0.5)
    ax.legend(fontsize=8, ncol=5)
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, "scores.png"))


if __name__ == "__main__":
    main()

"""ReCOIL against behaviour cloning on expert + suboptimal mixtures of Pendulum-v1 data, 5 seeds.

    .venv/bin/python experiments/recoil_pendulum.py [--steps 8000] [--seeds 5]

Expert data D^E: the first 5 episodes (1000 transitions) of the generated expert tier
(experiments/results/offline_pendulum/data, made by experiments/offline.py). Suboptimal data
D^S, two mixtures: random + medium (40k transitions) and medium-replay (20k). Per mixture:
ReCOIL(D^E, D^S), BC on D^E ∪ D^S (what one does without ReCOIL) and BC on D^E alone, same
steps, seeds, networks (128×128) and transitions per step (2 × 128 for ReCOIL, 256 for BC).
γ = 0.9: ReCOIL's expert bonus propagates over ~1/(1−γ) steps; at γ = 0.99 this budget is
too short (see agents/recoil.py). No rewards are read. Writes results.json and scores.png
under experiments/results/recoil_pendulum/.
"""
from __future__ import annotations

import argparse
import json
import os
import time

from rlx.parallel import use_all_cpu_cores

use_all_cpu_cores()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from rlx import data, envs  # noqa: E402
from rlx.agents import bc, recoil  # noqa: E402
from rlx.parallel import shard_runs  # noqa: E402
from rlx.run import make_train  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "results", "offline_pendulum", "data")
OUT = os.path.join(HERE, "results", "recoil_pendulum")


def union(*sets):
    return data.from_arrays(**{k: np.concatenate([np.asarray(getattr(s, k)) for s in sets]) for k in data.FIELDS},
                            metadata=sets[0].metadata)


def scores_of(agent, hp, ref, seeds):
    call, _ = shard_runs(jax.vmap(make_train(agent, eval_every=agent.num_iterations, eval_episodes=16)), seeds)
    hp = jax.tree.map(lambda x: jnp.broadcast_to(x, (seeds,) + jnp.shape(x)), hp)
    _, metrics = call(jax.random.split(jax.random.PRNGKey(0), seeds), hp)
    return ref.normalized_score(np.asarray(metrics["eval/return"])[:, -1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=8000)
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    env, params = envs.make("Pendulum-v1")
    load = lambda tier: data.load(os.path.join(DATA, f"pendulum-{tier}.npz"))
    expert = jax.tree.map(lambda x: x[:1000], load("expert"))
    assert len(expert.episode_returns()) == 5
    mixtures = {"random + medium": union(load("random"), load("medium")), "medium-replay": load("medium-replay")}
    hidden = (128, 128)
    results = {"steps": args.steps, "seeds": args.seeds, "hidden": list(hidden), "gamma": 0.9,
               "expert_transitions": len(expert),
               "expert_score": float(expert.normalized_score(expert.episode_returns()).mean()), "mixtures": {}}
    bc_cfg = bc.BCConfig(total_steps=args.steps, steps_per_iteration=1000, batch_size=256, hidden=hidden)
    bc_expert = bc.make(bc_cfg, expert, env, params)
    expert_only = scores_of(bc_expert, bc_expert.default_hparams(), expert, args.seeds)
    for name, sub in mixtures.items():
        t0 = time.perf_counter()
        agent = recoil.make(recoil.ReCOILConfig(total_steps=args.steps, steps_per_iteration=1000, batch_size=128,
                                                hidden=hidden), expert, sub, env, params)
        rec = scores_of(agent, agent.default_hparams().replace(gamma=jnp.float32(0.9)), expert, args.seeds)
        bc_union = bc.make(bc_cfg, union(expert, sub), env, params)
        bcu = scores_of(bc_union, bc_union.default_hparams(), expert, args.seeds)
        row = {"data_score": float(expert.normalized_score(sub.episode_returns()).mean()),
               "transitions": len(sub), "wall_s": time.perf_counter() - t0}
        for label, s in (("ReCOIL", rec), ("BC (expert ∪ suboptimal)", bcu), ("BC (expert only)", expert_only)):
            row[label] = {"normalized_score": s.tolist(), "mean": float(s.mean()), "std": float(s.std())}
        results["mixtures"][name] = row
        print(name, {k: round(v["mean"], 1) for k, v in row.items() if isinstance(v, dict)}, flush=True)
        with open(os.path.join(OUT, "results.json"), "w") as f:
            json.dump(results, f, indent=2)
    plot(results)


def plot(results):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["ReCOIL", "BC (expert ∪ suboptimal)", "BC (expert only)"]
    names = list(results["mixtures"])
    fig, ax = plt.subplots(figsize=(7, 3.8), dpi=120)
    w = 0.2
    for j, lab in enumerate(["suboptimal data"] + labels):
        xs = np.arange(len(names)) + (j - 1.5) * w
        if j == 0:
            ax.bar(xs, [results["mixtures"][n]["data_score"] for n in names], w, color="0.7", label=lab)
        else:
            ax.bar(xs, [results["mixtures"][n][lab]["mean"] for n in names], w,
                   yerr=[results["mixtures"][n][lab]["std"] for n in names], capsize=2, label=lab)
    ax.set_xticks(np.arange(len(names)), [f"5 expert episodes + {n}" for n in names], fontsize=8)
    ax.set_ylabel("normalised score")
    ax.set_title(f"Pendulum-v1 imitation, {results['steps']} steps, {results['seeds']} seeds (mean ± std)")
    ax.axhline(0, color="k", lw=0.5)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, "scores.png"))


if __name__ == "__main__":
    main()

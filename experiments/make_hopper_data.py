"""Generate the brax:hopper offline datasets (random, medium, medium-replay, expert) with one PPO run.

    .venv/bin/python experiments/make_hopper_data.py [--steps 100000]

PPO recipe: rlx.collect._PPO_RECIPES["brax:hopper"] (5M env steps, positional backend).
Writes experiments/results/offline_hopper/data/hopper-<tier>.npz and a summary JSON of the
tiers' normalised scores. Deterministic given --seed.
"""
import argparse
import json
import os
import time

from rlx import collect, data

OUT = os.path.join(os.path.dirname(__file__), "results", "offline_hopper", "data")
TIERS = ("random", "medium", "medium-replay", "expert")

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100_000, help="transitions per tier")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    t0 = time.time()
    sets = collect.make_datasets("brax:hopper", TIERS, args.steps, seed=args.seed)
    summary = {"seconds": round(time.time() - t0, 1), "tiers": {}}
    for tier, ds in sets.items():
        data.save_npz(ds, os.path.join(OUT, f"hopper-{tier}.npz"))
        rets = ds.episode_returns()
        summary["tiers"][tier] = {"transitions": len(ds), "episodes": int(len(rets)),
                                  "mean_return": float(rets.mean()) if len(rets) else None,
                                  "normalized_score": float(ds.normalized_score(rets).mean()) if len(rets) else None,
                                  "source": ds.metadata.source, "ref_random_return": ds.metadata.ref_random_return,
                                  "ref_expert_return": ds.metadata.ref_expert_return}
    with open(os.path.join(OUT, "..", "datasets.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary, indent=2))

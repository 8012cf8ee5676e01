"""Inner-loop throughput of a meta-generation vs plain vmapped PPO training, same number of runs.

    .venv/bin/python experiments/bench/bench_meta.py --out experiments/results/bench_meta.json

Both sides run the same PPO program (CartPole-v1, the LPO objective, 8 envs × 64 steps,
4 epochs × 4 minibatches, 64×64 tanh, one deterministic evaluation at the end) over
R = population × seeds runs, sharded over one XLA host device per core (what the CLI does):

- meta: a whole ES generation from ``rlx.meta.meta_train``: ask, the P × S inner runs,
  fitness normalisation, tell, the per-generation log files and the orbax checkpoint
  (the ``gen_s`` of each generation's log row);
- plain: ``jit(vmap(train))`` over R runs, each with its own drift-network weights (what
  ``rlx train`` does for a batch of runs), no ES around it.

The two are interleaved (one plain batch after every generation, through meta_train's
callback), so both see the same machine load; the first generation (compilation) is not
timed. Ratio = meta env-steps/s ÷ plain env-steps/s (the acceptance bar is ≥ 0.9).
The machine is shared: medians over the repeats are reported, with every sample.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--population", type=int, default=16)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--inner-steps", type=int, default=32_768)
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    from rlx.parallel import use_all_cpu_cores

    use_all_cpu_cores()
    import jax
    import jax.numpy as jnp
    import numpy as np

    from rlx import meta, objectives
    from rlx.parallel import shard_runs

    ppo = (("num_envs", 8), ("num_steps", 64), ("update_epochs", 4), ("num_minibatches", 4))
    cfg = meta.MetaConfig(objective="lpo", envs=("CartPole-v1",), inner_steps=(args.inner_steps,),
                          population=args.population, seeds=args.seeds, generations=1 + args.repeats, ppo=ppo,
                          ppo_weight=1.0, init_scale=0.01)
    R = args.population * args.seeds

    # plain: the same train function, vmapped over R runs with R different weight sets
    train, hp, steps_per_run = meta._ppo_parts(cfg, "CartPole-v1", args.inner_steps)

    def one(key, params):
        _, m = train(key, hp.replace(objective={**hp.objective, "params": params}))
        return m["eval/return"][-1]

    call, devices = shard_runs(jax.vmap(one), R)
    keys = jax.random.split(jax.random.PRNGKey(1), R)
    params = jax.vmap(lambda k: objectives.lpo_init(k, scale=0.01))(jax.random.split(jax.random.PRNGKey(2), R))
    t0 = time.perf_counter()
    jax.block_until_ready(call(keys, params))
    plain_compile_s = time.perf_counter() - t0

    plain_s, meta_s = [], []

    def after_generation(row):
        if row["generation"] == 0:
            return  # compilation
        meta_s.append(row["gen_s"])
        t = time.perf_counter()
        jax.block_until_ready(call(keys, params))
        plain_s.append(time.perf_counter() - t)

    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        res = meta.meta_train(cfg, d, progress=False, callback=after_generation)
        total_meta_s = time.perf_counter() - t0
    env_steps = R * steps_per_run
    plain_rate = [env_steps / s for s in plain_s]
    meta_rate = [env_steps / s for s in meta_s]
    ratio = statistics.median(meta_rate) / statistics.median(plain_rate)
    out = {
        "what": "env-steps/s of one ES generation (ask + inner runs + tell + logs + orbax checkpoint) vs plain "
                "jit(vmap(train)) over the same number of runs, interleaved",
        "env": "CartPole-v1", "objective": "lpo (PPO-initialised, 128 hidden)", "ppo": dict(ppo),
        "population": args.population, "seeds": args.seeds, "runs": R, "inner_steps": args.inner_steps,
        "env_steps_per_generation": env_steps, "devices": [str(x) for x in devices],
        "plain_env_steps_per_s": statistics.median(plain_rate), "meta_env_steps_per_s": statistics.median(meta_rate),
        "ratio_meta_over_plain": ratio, "passes_0.9": ratio >= 0.9,
        "samples": {"plain_s": plain_s, "meta_gen_s": meta_s,
                    "meta_inner_only_s": [h["wall_s"] for h in res.history[1:]]},
        "plain_compile_s": plain_compile_s, "meta_total_s_incl_compile": total_meta_s,
        "versions": {"jax": jax.__version__},
        "note": "machine shared with other jobs during the run; medians over repeats",
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
    print(json.dumps({k: out[k] for k in ("plain_env_steps_per_s", "meta_env_steps_per_s", "ratio_meta_over_plain")}))


if __name__ == "__main__":
    main()

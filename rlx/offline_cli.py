"""``rlx train iql|fdvl|xql --dataset FILE``: offline training from the command line.

    rlx train iql --dataset pendulum-medium.npz --steps 20000 --seeds 5 --out runs/iql
    rlx train fdvl --divergence tv --dataset pendulum-medium.npz --value-param lam=0.8,0.9 --out runs/tv
    rlx train xql --dataset pendulum-medium.npz --value-param temperature=1,2,5 --out runs/xql

A comma-separated hyperparameter is a sweep axis; the grid × seeds run as one program,
sharded over every device. summary.json holds normalized_score per run and its median,
final_return, and dataset_normalized_score (the data's own average, to beat).
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import sys
import time

OFFLINE = {"iql": "expectile", "fdvl": None, "xql": "xql"}


def build_parser(agent: str) -> argparse.ArgumentParser:
    from rlx.agents import iql
    from rlx.cli import _Formatter, add_config_flags

    p = argparse.ArgumentParser(prog=f"rlx train {agent}", formatter_class=_Formatter,
                                description=f"Offline {agent} on a dataset, seeds (and a grid) as one program.")
    g = p.add_argument_group("run")
    g.add_argument("--dataset", required=True, help="D4RL .hdf5, Minari directory or rlx .npz (see `rlx data collect`)")
    g.add_argument("--env", default=None, help="env id to evaluate in (default: the dataset's metadata env_id)")
    if agent == "fdvl":
        g.add_argument("--divergence", default="chi2", choices=["chi2", "tv", "rkl"], help="f-divergence")
    g.add_argument("--seeds", type=int, default=5)
    g.add_argument("--seed", type=int, default=0, help="first seed; run i uses PRNGKey(seed + i)")
    g.add_argument("--steps", type=int, default=None, help="gradient steps per run (sets total_steps)")
    g.add_argument("--value-param", action="append", default=[], metavar="KEY=VALUE",
                   help="a value-loss hyperparameter, e.g. tau=0.8 (comma list = grid)")
    g.add_argument("--out", default=None, help="output directory (default runs/AGENT-DATASET)")
    g.add_argument("--eval-every", type=int, default=None, help="iterations between evaluations (default 10 per run)")
    g.add_argument("--eval-episodes", type=int, default=10)
    add_config_flags(p, iql.IQLConfig, iql.default_hparams(), iql.HELP, skip_hparams=("value",))
    return p


def train_command(agent_name: str, argv: list[str]) -> dict:
    args = build_parser(agent_name).parse_args(argv)
    import jax
    import jax.numpy as jnp
    import numpy as np

    from rlx import data, envs, report
    from rlx.agents import dual, iql
    from rlx.cli import _parse_floats
    from rlx.parallel import shard_runs
    from rlx.run import make_train

    if args.seeds <= 0:
        raise SystemExit(f"rlx: --seeds must be a positive integer, got {args.seeds}")
    divergence = OFFLINE[agent_name] or args.divergence
    try:
        ds = data.load(args.dataset)
        env_id = args.env or ds.metadata.env_id
        if not env_id:
            raise SystemExit(f"rlx: {args.dataset} names no env in its metadata; pass --env")
        envs.validate_id(env_id)
        env, env_params = envs.make(env_id)
        fields = {f.name: getattr(args, f.name) for f in dataclasses.fields(iql.IQLConfig)}
        if args.steps is not None:
            fields["total_steps"] = args.steps
        agent = dual.make(iql.IQLConfig(**fields), ds, env, env_params, divergence=divergence)
    except (ValueError, TypeError) as e:
        raise SystemExit(f"rlx: {e}")
    base = agent.default_hparams()
    grid = {f.name: getattr(args, f.name) for f in dataclasses.fields(iql.IQLHparams) if f.name != "value"}
    value_grid = {}
    for item in args.value_param:
        k, sep, v = item.partition("=")
        if not sep or k not in base.value:
            raise SystemExit(f"rlx: --value-param {item!r}: expected KEY=VALUE with KEY one of: "
                             f"{', '.join(base.value) or '(none)'}")
        value_grid[k] = _parse_floats(v)
    axes = [(k, v) for k, v in grid.items() if len(v) > 1] + [("value." + k, v) for k, v in value_grid.items()
                                                               if len(v) > 1]
    settings = [dict(zip([a for a, _ in axes], c)) for c in itertools.product(*[v for _, v in axes])]

    def hp_for(setting):
        merged = {**{k: v[0] for k, v in grid.items()}, **{"value." + k: v[0] for k, v in value_grid.items()},
                  **setting}
        value = {**base.value, **{k[6:]: jnp.float32(v) for k, v in merged.items() if k.startswith("value.")}}
        return base.replace(value=value, **{k: jnp.float32(v) for k, v in merged.items() if "." not in k})

    runs = [(s, seed) for s in settings for seed in range(args.seed, args.seed + args.seeds)]
    hp_batch = jax.tree.map(lambda *xs: jnp.stack(xs), *[hp_for(s) for s, _ in runs])
    keys = jnp.stack([jax.random.PRNGKey(seed) for _, seed in runs])
    n = agent.num_iterations
    train = make_train(agent, eval_every=args.eval_every or max(1, n // 10), eval_episodes=args.eval_episodes)
    out = args.out or os.path.join("runs", f"{agent.name}-{os.path.splitext(os.path.basename(args.dataset))[0]}")
    report.ensure_dir(out)
    print(f"rlx: {agent.name} on {args.dataset} ({len(ds):,} transitions, env {env_id}): {len(runs)} runs of "
          f"{n * agent.steps_per_iteration:,} gradient steps; compiling...", file=sys.stderr)
    t0 = time.perf_counter()
    call, devices = shard_runs(jax.vmap(train), len(runs))
    call.compile(keys, hp_batch)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, metrics = call(keys, hp_batch)
    metrics = jax.tree.map(np.asarray, jax.device_get(metrics))
    wall_s = time.perf_counter() - t0

    final = metrics["eval/return"][:, -1].astype(float)
    has_ref = ds.metadata.ref_random_return is not None and ds.metadata.ref_expert_return is not None
    score = ds.normalized_score(final) if has_ref else np.full_like(final, np.nan)
    data_score = float(ds.normalized_score(ds.episode_returns()).mean()) if has_ref else None
    labels = [{**s, "seed": seed} for s, seed in runs]
    rows = [{**lab, "final_return": float(f), "normalized_score": float(sc)}
            for lab, f, sc in zip(labels, final, score)]
    steps = n * agent.steps_per_iteration
    summary = {
        "agent": agent.name, "env": env_id, "dataset": os.path.abspath(args.dataset), "seeds": args.seeds,
        "runs": len(runs), "gradient_steps": steps, "compile_s": round(compile_s, 3), "wall_s": round(wall_s, 3),
        "steps_per_s": round(steps * len(runs) / wall_s, 1),
        "final_return": final.tolist(), "final_return_median": float(np.median(final)),
        "normalized_score": score.tolist(), "normalized_score_median": float(np.median(score)),
        "dataset_normalized_score": data_score, "config": dataclasses.asdict(agent.config),
        "hparams": {k: (v if len(v) > 1 else v[0]) for k, v in grid.items()},
        "value_params": {k: (v if len(v) > 1 else v[0]) for k, v in value_grid.items()},
        "sweep_axes": [a for a, _ in axes], "table": rows, "devices": [str(d) for d in devices],
    }
    report.write_summary(os.path.join(out, "summary.json"), summary)
    report.write_metrics_csv(os.path.join(out, "metrics.csv"), metrics, labels, agent.steps_per_iteration)
    report.plot_eval_curve(os.path.join(out, "learning_curve.png"), metrics, agent.steps_per_iteration,
                           f"{agent.name} · {os.path.basename(args.dataset)}",
                           None if data_score is None else (ds, data_score))
    print(report.table(rows, list(labels[0]) + ["final_return", "normalized_score"]))
    print(f"median normalised score {summary['normalized_score_median']:.1f} (dataset {data_score}) · "
          f"compile {compile_s:.1f} s · {summary['steps_per_s']:,.0f} gradient steps/s · wrote {out}/")
    return summary

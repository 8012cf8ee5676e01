"""``rlx train AGENT --dataset FILE``: offline training from the command line.

    rlx train iql --dataset pendulum-medium.npz --steps 20000 --seeds 5 --out runs/iql
    rlx train cql --dataset pendulum-medium.npz --lagrange --out runs/cql-lagrange
    rlx train fdvl --divergence tv --dataset pendulum-medium.npz --value-param lam=0.8,0.9 --out runs/tv
    rlx train xql --dataset pendulum-medium.npz --value-param temperature=1,2,5 --out runs/xql
    rlx train recoil --expert pendulum-expert5.npz --data pendulum-random-medium.npz --out runs/recoil

A comma-separated hyperparameter is a sweep axis; the grid × seeds run as one program,
sharded over every device, in chunks with a progress bar, NaN guard, optional checkpoints
(``--checkpoint-every K``) and ``--resume DIR``, exactly like the online agents.
summary.json holds normalized_score per run and its median, final_return, and
dataset_normalized_score (the data's own average: the number to beat).
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import sys
from typing import Callable, NamedTuple


class OfflineAgent(NamedTuple):
    module: str  # the agent's module: Config, Hparams, default_hparams, HELP, make
    build: Callable  # (module, config, args, dataset, env, env_params) -> Agent
    summary: str


def _plain(module, config, args, ds, env, env_params):
    return module.make(config, ds, env, env_params)


def _dual(divergence):
    def build(module, config, args, ds, env, env_params):
        from rlx.agents import dual

        return dual.make(config, ds, env, env_params, divergence=divergence or args.divergence)

    return build


def _recoil(module, config, args, ds, env, env_params):
    from rlx import data

    return module.make(config, data.load(args.expert), ds, env, env_params)


OFFLINE = {
    "iql": OfflineAgent("rlx.agents.iql", _dual("expectile"), "IQL: expectile V, AWR actor"),
    "fdvl": OfflineAgent("rlx.agents.iql", _dual(None), "f-DVL (Dual RL): chi2 | tv | rkl value loss"),
    "xql": OfflineAgent("rlx.agents.iql", _dual("xql"), "XQL: Gumbel value loss, Huber critic"),
    "cql": OfflineAgent("rlx.agents.cql", _plain, "CQL(H), SAC-based; --lagrange for the Lagrange variant"),
    "td3bc": OfflineAgent("rlx.agents.td3bc", _plain, "TD3+BC"),
    "awac": OfflineAgent("rlx.agents.awac", _plain, "AWAC, offline"),
    "bc": OfflineAgent("rlx.agents.bc", _plain, "behaviour cloning (Gaussian maximum likelihood)"),
    "recoil": OfflineAgent("rlx.agents.recoil", _recoil, "ReCOIL: imitation from --expert plus --data, no rewards"),
}


def build_parser(agent: str, module) -> argparse.ArgumentParser:
    from rlx.cli import _Formatter, add_config_flags, add_run_flags

    p = argparse.ArgumentParser(prog=f"rlx train {agent}", formatter_class=_Formatter,
                                description=f"{OFFLINE[agent].summary}. Offline, on a dataset; seeds (and a grid) "
                                            "as one program.")
    g = p.add_argument_group("run")
    g.add_argument("--dataset", "--data", dest="dataset", required=True,
                   help="D4RL .hdf5, Minari directory or rlx .npz (see `rlx data collect`)"
                        + ("; for recoil: the suboptimal data" if agent == "recoil" else ""))
    if agent == "recoil":
        g.add_argument("--expert", required=True, help="the (small) expert dataset, same formats")
    g.add_argument("--env", default=None, help="env id to evaluate in (default: the dataset's metadata env_id)")
    if agent == "fdvl":
        g.add_argument("--divergence", default="chi2", choices=["chi2", "tv", "rkl"], help="f-divergence")
    hp = module.default_hparams()
    nested = isinstance(getattr(hp, "value", None), dict)
    if nested:
        g.add_argument("--value-param", action="append", default=[], metavar="KEY=VALUE",
                       help="a value-loss hyperparameter, e.g. tau=0.8 (comma list = grid)")
    g.add_argument("--out", default=None, help="output directory (default runs/AGENT-DATASET)")
    add_run_flags(g, seeds=5, eval_episodes=10, steps_help="gradient steps per run (sets total_steps)")
    add_config_flags(p, module.Config, hp, getattr(module, "HELP", {}), skip_hparams=("value",))
    return p


def train_command(agent_name: str, argv: list[str]) -> dict:
    spec = OFFLINE[agent_name]
    module = importlib.import_module(spec.module)
    args = build_parser(agent_name, module).parse_args(argv)
    import jax
    import numpy as np

    from rlx import data, envs, report
    from rlx.cli import _resume_out, _save_final_params, check_counts, make_grid, parse_key_values, run_grid
    from rlx.logs import write_metrics_json

    check_counts(args)
    try:
        ds = data.load(args.dataset)
        env_id = args.env or ds.metadata.env_id
        if not env_id:
            raise SystemExit(f"rlx: {args.dataset} names no env in its metadata; pass --env")
        envs.validate_id(env_id)
        env, env_params = envs.make(env_id)
        fields = {f.name: getattr(args, f.name) for f in dataclasses.fields(module.Config)}
        if args.steps is not None:
            fields["total_steps"] = args.steps
        config = module.Config(**fields)
        agent = spec.build(module, config, args, ds, env, env_params)
    except (ValueError, TypeError) as e:
        raise SystemExit(f"rlx: {e}")

    base = agent.default_hparams()
    nested_name = "value" if isinstance(getattr(base, "value", None), dict) else None
    flat = {f.name: getattr(args, f.name) for f in dataclasses.fields(base) if f.name != nested_name}
    nested = parse_key_values(getattr(args, "value_param", []), base.value, "--value-param",
                              "the value loss's hyperparameters") if nested_name else {}
    grid = make_grid(base, flat, range(args.seed, args.seed + args.seeds), nested_name, nested)
    labels = grid.labels
    n = agent.num_iterations
    out = args.out or (_resume_out(args.resume) if args.resume else None) or os.path.join(
        "runs", f"{agent.name}-{os.path.splitext(os.path.basename(args.dataset))[0]}")
    report.ensure_dir(out)
    print(f"rlx: {agent.name} on {args.dataset} ({len(ds):,} transitions, env {env_id}): {len(labels)} runs of "
          f"{n * agent.steps_per_iteration:,} gradient steps; compiling...", file=sys.stderr)
    meta = dict(agent=agent.name, env=env_id, dataset=os.path.abspath(args.dataset), dataset_size=len(ds),
                expert=os.path.abspath(args.expert) if agent_name == "recoil" else None,
                config=dataclasses.asdict(config))
    result, eval_every, chunk = run_grid(agent, args, out, grid, meta, desc=f"{agent.name} {env_id}",
                                         unit_name="grad-steps")
    metrics = result.metrics

    final = metrics["eval/return"][:, -1].astype(float)
    ref = ds if ds.metadata.ref_random_return is not None else None
    if ref is None and agent_name == "recoil":  # imitation data may carry its references in the expert file
        expert = data.load(args.expert)
        ref = expert if expert.metadata.ref_random_return is not None else None
    has_ref = ref is not None and ref.metadata.ref_expert_return is not None
    score = ref.normalized_score(final) if has_ref else np.full_like(final, np.nan)
    data_score = float(ref.normalized_score(ds.episode_returns()).mean()) if has_ref else None
    rows = [{**lab, "final_return": float(f), "normalized_score": float(sc),
             "best_normalized_score": float(np.nanmax(ref.normalized_score(metrics["eval/return"][i])))
             if has_ref else float("nan")}
            for i, (lab, f, sc) in enumerate(zip(labels, final, score))]
    steps = n * agent.steps_per_iteration
    summary = {
        "agent": agent.name, "env": env_id, "dataset": os.path.abspath(args.dataset), "seeds": args.seeds,
        "runs": len(labels), "gradient_steps": steps, "compile_s": round(result.compile_s, 3),
        "wall_s": round(result.wall_s, 3),
        "steps_per_s": round((n - result.resumed_from) * agent.steps_per_iteration * len(labels) / result.wall_s, 1),
        "resumed_from_iteration": result.resumed_from, "chunk_iterations": chunk,
        "final_return": final.tolist(), "final_return_median": float(np.median(final)),
        "normalized_score": score.tolist(), "normalized_score_median": float(np.median(score)),
        "dataset_normalized_score": data_score, "config": dataclasses.asdict(agent.config),
        "hparams": grid.hparams, "value_params": grid.nested_params, "sweep_axes": grid.axes, "table": rows,
        "devices": [str(d) for d in result.devices],
        "versions": {"jax": jax.__version__, "python": sys.version.split()[0]},
    }
    if agent_name == "recoil":
        summary["expert"] = os.path.abspath(args.expert)
    report.write_summary(os.path.join(out, "summary.json"), summary)
    every = args.log_every or report.log_every(agent.num_iterations)
    report.write_metrics_csv(os.path.join(out, "metrics.csv"), metrics, labels, agent.steps_per_iteration, every)
    write_metrics_json(os.path.join(out, "metrics.json"), metrics, labels, agent.steps_per_iteration, every)
    _save_final_params(os.path.join(out, "final_state.npz"), result.state)
    report.plot_eval_curve(os.path.join(out, "learning_curve.png"), metrics, agent.steps_per_iteration,
                           f"{agent.name} · {os.path.basename(args.dataset)}",
                           None if data_score is None else (ref, data_score))
    print(report.table(rows, list(labels[0]) + ["final_return", "normalized_score"]))
    print(f"median normalised score {summary['normalized_score_median']:.1f} (dataset {data_score}) · "
          f"compile {result.compile_s:.1f} s · {summary['steps_per_s']:,.0f} gradient steps/s · wrote {out}/")
    return summary

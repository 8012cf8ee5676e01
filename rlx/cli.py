"""The ``rlx`` command line.

    rlx train ppo --env CartPole-v1 --seeds 8 --steps 500000 --objective ppo_clip --out runs/cartpole
    rlx train ppo --env CartPole-v1 --lr 1e-4,2.5e-4,1e-3 --seeds 4     # a 3 × 4 sweep, one program
    rlx train ppo --help                                                  # every field with its default

Every static config field and every hyperparameter is a flag of the same name. A
hyperparameter given as a comma-separated list becomes a grid axis: the grid × seeds run
as one ``jit(vmap(train))``.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import itertools
import os
import sys
import typing

AGENTS = {"ppo": "rlx.agents.ppo", "sac": "rlx.agents.sac", "td3": "rlx.agents.td3"}
COMMON = ("env", "seeds", "seed", "steps", "objective", "objective_param", "out", "eval_every", "eval_episodes",
          "no_progress", "checkpoint_every", "resume", "chunk", "tensorboard")


def agent_names() -> list[str]:
    from rlx.offline_cli import OFFLINE

    return sorted(AGENTS) + sorted(OFFLINE)


def agent_module(name: str):
    if name not in AGENTS:
        raise SystemExit(f"rlx: unknown agent {name!r}; choose one of: {', '.join(agent_names())}")
    return importlib.import_module(AGENTS[name])


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _parse_hidden(text: str) -> tuple[int, ...]:
    try:
        out = tuple(int(w) for w in text.split(",") if w.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer widths like 64,64, got {text!r}")
    if not out:
        raise argparse.ArgumentTypeError("expected at least one layer width")
    return out


def _parse_floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or comma-separated numbers, got {text!r}")


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds "(default: ...)" unless the help text already shows the default itself."""

    def _get_help_string(self, action):
        return action.help if "(default:" in (action.help or "") else super()._get_help_string(action)


def add_config_flags(parser, config_cls, default_hparams, helps: dict, skip_hparams=()) -> None:
    """One flag per static config field and per scalar hyperparameter, named after the field."""
    g = parser.add_argument_group("static config (changing these recompiles)")
    for f in dataclasses.fields(config_cls):
        hint = typing.get_type_hints(config_cls)[f.name]
        h = helps.get(f.name, f.name)
        if hint is bool:
            g.add_argument(_flag(f.name), default=f.default, action=argparse.BooleanOptionalAction, help=h)
        elif hint in (int, float, str):
            g.add_argument(_flag(f.name), type=hint, default=f.default, help=h)
        else:  # tuple[int, ...]
            g.add_argument(_flag(f.name), type=_parse_hidden, default=f.default, metavar="W1,W2,...", help=h)
    g = parser.add_argument_group("hyperparameters (dynamic: a comma-separated list makes a sweep axis)")
    for f in dataclasses.fields(default_hparams):
        if f.name in skip_hparams:
            continue
        value = float(getattr(default_hparams, f.name))
        # The default is shown by hand: argparse would print the parsed list form.
        g.add_argument(_flag(f.name), type=_parse_floats, default=[value], metavar="X[,Y,...]",
                       help=f"{helps.get(f.name, f.name)} (default: {value:g})")


def add_run_flags(g, *, seeds: int, eval_episodes: int, steps_help: str) -> None:
    """The flags every ``rlx train`` command shares: seeds, output, evaluation, chunks, checkpoints."""
    g.add_argument("--seeds", type=int, default=seeds, help="number of seeds, vmapped")
    g.add_argument("--seed", type=int, default=0, help="first seed; run i uses PRNGKey(seed + i)")
    g.add_argument("--steps", type=int, default=None, help=steps_help)
    g.add_argument("--eval-every", type=int, default=None, help="iterations between deterministic evaluations "
                   "(default: 20 per run)")
    g.add_argument("--eval-episodes", type=int, default=eval_episodes, help="episodes per evaluation")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--checkpoint-every", type=int, default=None, metavar="K",
                   help="save the whole population (orbax) every K iterations to OUT/checkpoint")
    g.add_argument("--resume", default=None, metavar="DIR",
                   help="continue the run checkpointed in DIR (an --out directory or its checkpoint/); "
                        "every other flag must match the original run")
    g.add_argument("--chunk", type=int, default=None, metavar="K",
                   help="iterations per jitted call; the progress bar, NaN guard and logs update between "
                        "calls (default: about 1/20 of the run, a divisor of it where one is near, so every call "
                        "is one compiled program; at most --checkpoint-every)")
    g.add_argument("--tensorboard", action="store_true", help="also write TensorBoard logs to OUT/tb")
    g.add_argument("--log-every", type=int, default=None, metavar="K",
                   help="iterations per row of metrics.csv/json, each row the mean over its K iterations "
                        "(default: at most 1000 rows per run)")


def build_train_parser(agent: str, module) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"rlx train {agent}", formatter_class=_Formatter,
                                description=f"Train {agent} over seeds (and a hyperparameter grid) as one jitted program.")
    g = p.add_argument_group("run")
    g.add_argument("--env", default="CartPole-v1", help="env id: any gymnax id, or brax:NAME")
    g.add_argument("--objective", default=module.DEFAULT_OBJECTIVE,
                   help={"ppo": "policy objective: a registered name (see `rlx objectives`) or a file saved by "
                                "rlx.objectives.save / rlx meta-train",
                         "sac": "actor objective: sac or mdpo (off-policy MDPO)"}.get(agent, "actor objective"))
    g.add_argument("--objective-param", action="append", default=[], metavar="KEY=VALUE",
                   help="set a scalar hyperparameter of the objective, e.g. epsilon=0.3 (repeatable; comma list = grid)")
    g.add_argument("--out", default=None, help="output directory (default runs/AGENT-ENV-OBJECTIVE)")
    add_run_flags(g, seeds=8, eval_episodes=8, steps_help="total env steps per run (sets total_timesteps)")
    add_config_flags(p, module.Config, module.default_hparams(), getattr(module, "HELP", {}),
                     skip_hparams=("objective",))
    return p


@dataclasses.dataclass
class Grid:
    """A hyperparameter grid × seeds, flattened into runs (the batch axis of one program)."""

    settings: list  # one dict per grid point: {axis: value}
    axes: list  # names of the axes with more than one value ("lr", "objective.epsilon", ...)
    labels: list  # one dict per run: the setting plus "seed"
    hp_batch: object  # the hyperparameter pytree with a leading [runs] axis
    keys: object  # [runs] PRNG keys
    hparams: dict  # every flat hyperparameter: a value, or its list when it is an axis
    nested_params: dict  # the same for the nested hyperparameter dict

    def groups(self) -> dict:
        """{"lr=0.001, ...": [run indices]}: the runs of each grid point (its seeds)."""
        name = lambda s: ", ".join(f"{k}={v:g}" for k, v in s.items())
        return {name(s): [i for i, lab in enumerate(self.labels) if all(lab[k] == v for k, v in s.items())]
                for s in self.settings}


def parse_key_values(items: list[str], allowed: dict, flag: str, what: str) -> dict:
    """``["tau=0.7,0.9", ...]`` → ``{"tau": [0.7, 0.9]}``; keys must be in ``allowed``."""
    out = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or k not in allowed:
            raise SystemExit(f"rlx: {flag} {item!r}: expected KEY=VALUE with KEY one of {what}: "
                             f"{', '.join(allowed) or '(none)'}")
        out[k] = _parse_floats(v)
    return out


def make_grid(base_hp, flat: dict, seeds: range, nested_name: str | None = None, nested: dict | None = None) -> Grid:
    """Runs = every combination of the multi-valued flags × seeds; run order is grid-major.

    ``flat``: {hparam field: [values]}; ``nested``: {key: [values]} for the dict-valued
    hyperparameter field ``nested_name`` (an objective's or value loss's own hyperparameters).
    """
    import jax
    import jax.numpy as jnp

    nested = nested or {}
    axes = [(k, v) for k, v in flat.items() if len(v) > 1]
    axes += [(f"{nested_name}.{k}", v) for k, v in nested.items() if len(v) > 1]
    settings = [dict(zip([a for a, _ in axes], c)) for c in itertools.product(*[v for _, v in axes])]
    prefix = f"{nested_name}."

    def hp_for(setting):
        merged = {**{k: v[0] for k, v in flat.items()}, **{prefix + k: v[0] for k, v in nested.items()}, **setting}
        hp = base_hp.replace(**{k: jnp.float32(v) for k, v in merged.items() if "." not in k})
        if nested_name:
            sub = {**getattr(base_hp, nested_name),
                   **{k[len(prefix):]: jnp.float32(v) for k, v in merged.items() if k.startswith(prefix)}}
            hp = hp.replace(**{nested_name: sub})
        return hp

    runs = [(s, seed) for s in settings for seed in seeds]
    return Grid(settings=settings, axes=[a for a, _ in axes], labels=[{**s, "seed": seed} for s, seed in runs],
                hp_batch=jax.tree.map(lambda *xs: jnp.stack(xs), *[hp_for(s) for s, _ in runs]),
                keys=jnp.stack([jax.random.PRNGKey(seed) for _, seed in runs]),
                hparams={k: (v if len(v) > 1 else v[0]) for k, v in flat.items()},
                nested_params={k: (v if len(v) > 1 else v[0]) for k, v in nested.items()})


def check_counts(args) -> None:
    """--seeds and --eval-episodes are positive (the table and summary report evaluation returns)."""
    for flag in ("seeds", "eval_episodes"):
        if getattr(args, flag) <= 0:
            raise SystemExit(f"rlx: --{flag.replace('_', '-')} must be a positive integer, got {getattr(args, flag)}")


def default_chunk(num_iterations: int, checkpoint_every: int | None = None) -> int:
    """Iterations per jitted call when ``--chunk`` is not given: about 1/20 of the run.

    Every chunk length is its own compiled program, so the chunk is a divisor of the run where
    one lies between half and twice that (and not above ``--checkpoint-every``): CartPole's 976
    iterations at 500k steps in chunks of 48 would end on a chunk of 16, a second ~10 s compile;
    in chunks of 61 they are one program.
    """
    target = min(checkpoint_every or num_iterations, max(1, num_iterations // 20))
    hi = min(2 * target, checkpoint_every or num_iterations)
    divisors = [d for d in range(max(1, target // 2), hi + 1) if num_iterations % d == 0]
    return min(divisors, key=lambda d: (abs(d - target), d)) if divisors else target


def run_grid(agent, args, out: str, grid: Grid, meta: dict, desc: str, unit_name: str = "env-steps"):
    """Run a grid with the shared machinery: progress bar, NaN guard, logs, checkpoints, resume.

    ``meta`` identifies the run (agent, env or dataset, config, ...): a checkpoint only resumes
    a run with the same meta. Returns ``(PopulationResult, eval_every, chunk)``.
    """
    from rlx.checkpoint import CheckpointError
    from rlx.logs import NonFiniteError, TensorBoard
    from rlx.progress import ProgressBar
    from rlx.run import run_population

    n_iter = agent.num_iterations
    eval_every = args.eval_every or max(1, n_iter // 20)
    chunk = args.chunk or default_chunk(n_iter, args.checkpoint_every)
    if chunk <= 0 or any(v is not None and v <= 0 for v in (args.checkpoint_every, args.log_every)):
        raise SystemExit("rlx: --chunk, --checkpoint-every and --log-every must be positive integers")
    ckpt = _checkpointer(args, out, {**meta, "num_iterations": n_iter, "eval_every": eval_every,
                                     "eval_episodes": args.eval_episodes}, grid.labels, grid.keys, grid.hp_batch)
    bar = ProgressBar(n_iter, agent.steps_per_iteration, runs=len(grid.labels), desc=desc, unit_name=unit_name,
                      disable=args.no_progress)
    tb = TensorBoard(out, grid.labels, agent.steps_per_iteration) if args.tensorboard else None
    try:
        result = run_population(agent, grid.keys, grid.hp_batch, num_iterations=n_iter, eval_every=eval_every,
                                eval_episodes=args.eval_episodes, chunk_iterations=chunk, checkpointer=ckpt,
                                checkpoint_every=args.checkpoint_every, resume=bool(args.resume),
                                progress=bar.callback, labels=grid.labels, on_chunk=tb.write if tb else None)
    except (CheckpointError, NonFiniteError) as e:
        bar.close()
        raise SystemExit(f"rlx: {e}")
    finally:
        if tb:
            tb.close()
    bar.close()
    return result, eval_every, chunk


def train_command(argv: list[str]) -> dict:
    if not argv or argv[0].startswith("-"):
        raise SystemExit(f"usage: rlx train AGENT [options]; agents: {', '.join(agent_names())}")
    agent_name, rest = argv[0], argv[1:]
    from rlx import offline_cli

    if agent_name in offline_cli.OFFLINE:  # offline agents read a dataset instead of an env
        return offline_cli.train_command(agent_name, rest)
    module = agent_module(agent_name)
    args = build_train_parser(agent_name, module).parse_args(rest)
    return run_training(agent_name, module, args)


def run_training(agent_name: str, module, args) -> dict:
    """Validate everything, compile once, run the whole grid × seeds, write the outputs."""
    import jax
    import numpy as np

    from rlx import envs, objectives, report
    from rlx.checkpoint import array_digest
    from rlx.logs import write_metrics_json

    # Validate before compiling: env id, objective, config, hyperparameters.
    check_counts(args)
    try:
        envs.validate_id(args.env)
        # A name goes to the agent as it is (each agent knows its own objectives); a file is a
        # learned objective saved by rlx.objectives.save.
        objective = objectives.load(args.objective) if os.path.isfile(args.objective) else args.objective
        fields = {f.name: getattr(args, f.name) for f in dataclasses.fields(module.Config)}
        if args.steps is not None:
            fields["total_timesteps"] = args.steps
        config = module.Config(**fields)
        env, env_params = envs.make(args.env)
        agent = module.make(config, env, env_params, objective=objective)
    except (ValueError, TypeError) as e:
        raise SystemExit(f"rlx: {e}")
    base_hp = agent.default_hparams()

    flat = {f.name: getattr(args, f.name) for f in dataclasses.fields(module.Hparams) if f.name != "objective"}
    scalars = {n: x for n, x in base_hp.objective.items() if np.ndim(x) == 0}
    nested = parse_key_values(args.objective_param, scalars, "--objective-param", "the objective's scalar "
                              "hyperparameters")
    grid = make_grid(base_hp, flat, range(args.seed, args.seed + args.seeds), "objective", nested)
    n_iter = agent.num_iterations
    objective_name = args.objective
    out = args.out or (_resume_out(args.resume) if args.resume else None) or os.path.join(
        "runs", f"{agent_name}-{args.env.replace(':', '_')}-{os.path.basename(args.objective)}")
    report.ensure_dir(out)
    labels, settings = grid.labels, grid.settings
    print(f"rlx: {agent_name} on {args.env}, objective {objective_name}: {len(settings)} setting(s) × "
          f"{args.seeds} seed(s) = {len(labels)} runs of {n_iter * agent.steps_per_iteration:,} env steps; "
          "compiling...", file=sys.stderr)
    meta = dict(agent=agent_name, env=args.env, objective=args.objective, config=dataclasses.asdict(config),
                env_params=array_digest(env_params))
    result, eval_every, chunk = run_grid(agent, args, out, grid, meta, desc=f"{agent_name} {args.env}")
    state, metrics, compile_s, wall_s, devices = (result.state, result.metrics, result.compile_s, result.wall_s,
                                                  result.devices)
    env_steps = n_iter * agent.steps_per_iteration
    final = metrics["eval/return"][:, -1].astype(float)
    rows = [{**lab, "final_return": float(f),
             "best_eval_return": float(np.max(metrics["eval/return"][i])),
             "last_train_return": float(_last_finite(metrics["episode_return"][i]))}
            for i, (lab, f) in enumerate(zip(labels, final))]
    summary = {
        "agent": agent_name, "env": args.env, "objective": objective_name, "seeds": args.seeds,
        "runs": len(labels), "env_steps": env_steps, "compile_s": round(compile_s, 3), "wall_s": round(wall_s, 3),
        "steps_per_s": round((n_iter - result.resumed_from) * agent.steps_per_iteration * len(labels) / wall_s, 1),
        "resumed_from_iteration": result.resumed_from, "chunk_iterations": chunk,
        "final_return": final.tolist(), "final_return_median": float(np.median(final)),
        "config": dataclasses.asdict(config),
        "hparams": grid.hparams, "objective_params": grid.nested_params, "sweep_axes": grid.axes, "table": rows,
        "devices": [str(d) for d in devices],
        "versions": {"jax": jax.__version__, "python": sys.version.split()[0]},
    }
    report.write_summary(os.path.join(out, "summary.json"), summary)
    every = args.log_every or report.log_every(agent.num_iterations)
    report.write_metrics_csv(os.path.join(out, "metrics.csv"), metrics, labels, agent.steps_per_iteration, every)
    write_metrics_json(os.path.join(out, "metrics.json"), metrics, labels, agent.steps_per_iteration, every)
    _save_final_params(os.path.join(out, "final_state.npz"), state)
    report.plot_learning_curve(os.path.join(out, "learning_curve.png"), metrics, agent.steps_per_iteration,
                               f"{agent_name} · {args.env} · {os.path.basename(str(objective_name))}",
                               grid.groups() if len(settings) > 1 else None)
    print(report.table(rows, list(labels[0]) + ["final_return", "best_eval_return", "last_train_return"]))
    print(f"median final return {summary['final_return_median']:.4g} over {len(labels)} runs · compile "
          f"{compile_s:.1f} s · {summary['steps_per_s']:,.0f} env-steps/s · wrote {out}/")
    return summary


def sweep_command(argv: list[str]) -> dict:
    """``rlx sweep CONFIG.toml --out DIR``: see rlx.sweep for the config format."""
    p = argparse.ArgumentParser(prog="rlx sweep", description="Run a sweep described by a TOML config "
                                "(see experiments/configs/ and rlx/sweep.py).")
    p.add_argument("config", help="path of a sweep config, e.g. experiments/configs/ppo_cartpole_grid.toml")
    p.add_argument("--out", default=None, help="output directory (default runs/sweep-CONFIGNAME)")
    p.add_argument("--max-parallel", type=int, default=None,
                   help="runs per jitted call (overrides the config's max_parallel; results are identical)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    from rlx import report, sweep
    from rlx.config import ConfigError
    from rlx.logs import NonFiniteError

    try:
        spec = sweep.load(args.config)
        if args.max_parallel is not None:
            if args.max_parallel < 0:
                raise ConfigError(f"--max-parallel={args.max_parallel}: must be >= 0")
            spec.max_parallel = args.max_parallel
        out = args.out or os.path.join("runs", "sweep-" + os.path.splitext(os.path.basename(args.config))[0])
        print(f"rlx sweep: {len(spec.settings)} setting(s) × {len(spec.seeds)} seed(s) = {len(spec.runs)} runs",
              file=sys.stderr)
        result = sweep.run(spec, out, progress=not args.no_progress)
    except (ConfigError, NonFiniteError) as e:
        raise SystemExit(f"rlx: {e}")
    rows = [{k: v for k, v in r.items() if not k.startswith("_") and k != "group"} for r in result["rows"]]
    print(report.table(rows, list(rows[0])))
    print(f"wrote {out}/sweep.csv, sweep.json, curves.png" + (", heatmap.png" if os.path.exists(
        os.path.join(out, "heatmap.png")) else ""))
    return result


def _resume_out(path: str) -> str:
    from rlx.checkpoint import META

    path = os.path.abspath(path)
    return os.path.dirname(path) if os.path.exists(os.path.join(path, META)) else path


def _checkpointer(args, out, meta: dict, labels, keys, hp_batch):
    """The run's Checkpointer (None when neither --checkpoint-every nor --resume is given)."""
    if not args.checkpoint_every and not args.resume:
        return None
    from rlx.checkpoint import META, CheckpointError, Checkpointer, array_digest, fingerprint

    if args.resume:
        d = os.path.abspath(args.resume)
        d = d if os.path.exists(os.path.join(d, META)) else os.path.join(d, "checkpoint")
        if not os.path.isdir(d):
            raise SystemExit(f"rlx: --resume {args.resume}: no such checkpoint directory")
    else:
        d = os.path.join(out, "checkpoint")
    meta = fingerprint(**meta, runs=len(labels), labels=labels, keys=array_digest(keys),
                       hparams=array_digest(hp_batch))
    try:
        ckpt = Checkpointer(d, meta)
        if args.resume:
            ckpt.check_compatible()
            if ckpt.stored_meta() is None:
                raise CheckpointError(f"--resume {args.resume}: {d} holds no rlx checkpoint ({META} missing)")
        elif ckpt.stored_meta() is not None:
            raise CheckpointError(f"{d} already holds a checkpoint; pass --resume {out} to continue it, "
                                  "or choose another --out")
    except CheckpointError as e:
        raise SystemExit(f"rlx: {e}")
    return ckpt


def _save_final_params(path: str, state) -> None:
    """Every leaf of the final state of every run, as npz (no pickle), keyed by its tree path."""
    import jax
    import numpy as np

    leaves = jax.tree_util.tree_flatten_with_path(state)[0]
    np.savez(path, **{jax.tree_util.keystr(p): np.asarray(x) for p, x in leaves})


def _last_finite(x):
    import numpy as np

    x = np.asarray(x, float)
    finite = x[np.isfinite(x)]
    return finite[-1] if finite.size else float("nan")


def _use_compilation_cache() -> None:
    """Keep compiled programs on disk: RLX_CACHE_DIR ("off" disables), else the cache jax was
    already given (JAX_COMPILATION_CACHE_DIR or ``jax_compilation_cache_dir``), else ~/.cache/rlx/xla.

    Hyperparameters are traced arrays, so a new learning rate or objective parameter reuses
    the compiled program: only static config changes (shapes, counts) compile again. A cache
    jax already has is left as it is, with its own settings: the CLI called from a program (or
    from the tests) then shares that program's cache instead of writing to the home directory,
    and the same program is the same cache entry (jax's key includes the cache's path).
    """
    import jax

    path = os.environ.get("RLX_CACHE_DIR")
    if path is None and jax.config.jax_compilation_cache_dir:
        return
    path = path or os.path.join(os.path.expanduser("~"), ".cache", "rlx", "xla")
    if path.lower() == "off":
        return
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    # One XLA host device per core, so a batch of runs uses every core (see rlx.parallel).
    # Must happen before jax starts; a no-op if it already has.
    # On a CPU-only install, XLA's backend optimisation level 1: faster compiles, same speed
    # and numbers (see rlx.parallel.compile_faster; XLA_FLAGS can set another level).
    from rlx.parallel import compile_faster, use_all_cpu_cores

    use_all_cpu_cores()
    compile_faster()
    _use_compilation_cache()
    lazy = lambda module, fn: lambda a: getattr(importlib.import_module(module), fn)(a)
    commands = {
        "train": train_command,
        "sweep": sweep_command,
        "meta-train": lazy("rlx.meta", "meta_train_command"),
        "data": lazy("rlx.collect", "collect_command"),
        "objectives": lambda _: print("\n".join(importlib.import_module("rlx.objectives").names())),
        "envs": lambda _: print("\n".join(importlib.import_module("rlx.envs").env_ids())),
    }
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip() + "\n\ncommands: " + ", ".join(commands))
        return
    if argv[0] not in commands:
        raise SystemExit(f"rlx: unknown command {argv[0]!r}; choose one of: {', '.join(commands)}")
    commands[argv[0]](argv[1:])


if __name__ == "__main__":
    main()

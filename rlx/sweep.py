"""Sweeps: hyperparameters × seeds × env params × static configs, from a TOML file or a dict.

    rlx sweep experiments/configs/ppo_cartpole_lr_clip.toml --out runs/sweep

A config names an agent, an env and the axes to sweep:

    agent = "ppo"
    env = "CartPole-v1"
    seeds = 4
    mode = "grid"                 # grid | random | list
    max_parallel = 0              # runs per jitted call; 0 = all at once (results are identical)
    [config]                      # static: one compiled program per distinct setting
    total_timesteps = 100_000
    num_envs = [4, 8]
    [hparams]                     # dynamic: vmapped inside one program
    lr = [1e-4, 3e-4, 1e-3]
    [objective_params]
    epsilon = [0.1, 0.2, 0.3]
    [env_params]
    gravity = [9.8, 12.0]

A list is a grid axis. In random mode ``num_samples`` settings are drawn from tables such as
``lr = {log_uniform = [1e-5, 1e-3]}``, ``{uniform = [a, b]}`` or ``{choice = [...]}``. In list mode
``[[runs]]`` tables give the settings one by one (keys as in the output table: ``lr``,
``objective.epsilon``, ``config.num_envs``, ``env.gravity``).

Runs that share a static setting are one ``vmap``ped program whose runs axis is sharded over every
device (``rlx.parallel.RunsMesh``); ``max_parallel`` cuts it into equal chunks (the last is padded)
so memory stays bounded. The output is a tidy table, one row per (setting, seed), with final and
best returns (``sweep.csv``, ``sweep.json``), and plots (``curves.png``; ``heatmap.png`` for 2-D grids).
"""
from __future__ import annotations

import dataclasses
import importlib
import itertools
import json
import math
import os
import typing

import numpy as np

from rlx.config import ConfigError

AGENTS = {"ppo": "rlx.agents.ppo"}
MODES = ("grid", "random", "list")
TOP = {"agent": str, "env": str, "objective": str, "seeds": int, "seed": int, "mode": str, "num_samples": int,
       "sample_seed": int, "max_parallel": int, "eval_every": int, "eval_episodes": int, "chunk": int,
       "config": dict, "hparams": dict, "objective_params": dict, "env_params": dict, "runs": list}
# Accepted ranges of common hyperparameters (lo, hi, lo_inclusive); an agent module may add RANGES.
RANGES = {"lr": (0.0, None, False), "gamma": (0.0, 1.0, True), "gae_lambda": (0.0, 1.0, True),
          "vf_coef": (0.0, None, True), "ent_coef": (0.0, None, True), "vf_clip": (0.0, None, False),
          "max_grad_norm": (0.0, None, False), "anneal_lr": (0.0, 1.0, True), "tau": (0.0, 1.0, True)}


@dataclasses.dataclass
class Spec:
    """A validated sweep: the settings (one dict per setting, keys as in the output table) × seeds."""

    agent: str
    env: str
    objective: str
    seeds: list[int]
    settings: list[dict]
    axes: list[str]
    mode: str
    max_parallel: int = 0
    eval_every: int | None = None
    eval_episodes: int = 8
    chunk: int | None = None
    fixed: dict = dataclasses.field(default_factory=dict)  # single values applied to every run

    @property
    def runs(self) -> list[tuple[dict, int]]:
        return [(s, seed) for s in self.settings for seed in self.seeds]


def _err(where: str, msg: str):
    raise ConfigError(f"{where}: {msg}")


def load(path: str) -> Spec:
    """Read and validate a TOML sweep config; every error names the file and the key."""
    import tomllib

    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"sweep config {path!r} does not exist")
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})")
    return from_dict(raw, where=os.path.basename(path))


def from_dict(raw: dict, where: str = "sweep") -> Spec:
    for k, v in raw.items():
        if k not in TOP:
            _err(where, f"unknown key {k!r}; accepted keys: {', '.join(TOP)}")
        if not _is(v, TOP[k]):
            _err(where, f"{k} must be {_tname(TOP[k])}, got {type(v).__name__} {v!r}")
    agent = raw.get("agent")
    if agent not in AGENTS:
        _err(where, f"agent={agent!r}; choose one of: {', '.join(AGENTS)}")
    module = importlib.import_module(AGENTS[agent])
    mode = raw.get("mode", "grid")
    if mode not in MODES:
        _err(where, f"mode={mode!r}; choose one of: {', '.join(MODES)}")
    for k in ("seeds", "num_samples", "eval_every", "eval_episodes", "chunk"):
        if k in raw and raw[k] <= 0:
            _err(where, f"{k}={raw[k]} is out of range: must be a positive integer")
    if raw.get("max_parallel", 0) < 0:
        _err(where, f"max_parallel={raw['max_parallel']} is out of range: must be >= 0 (0 = all runs at once)")
    if mode == "random" and "num_samples" not in raw:
        _err(where, "mode='random' needs num_samples (how many settings to draw)")
    if mode != "list" and "runs" in raw:
        _err(where, "[[runs]] tables are only read in mode='list'")
    from rlx import envs, objectives

    env_id = raw.get("env", "CartPole-v1")
    try:
        envs.validate_id(env_id)
        surrogate = objectives.get(raw.get("objective", "ppo_clip"))
    except (ValueError, KeyError) as e:
        _err(where, str(e))
    _, env_params = envs.make(env_id)
    hp0 = module.default_hparams(surrogate)

    # Every sweepable key with a checker that returns the cleaned value.
    checkers = {}
    hints = typing.get_type_hints(module.Config)
    for f in dataclasses.fields(module.Config):
        checkers["config." + f.name] = _static_checker(f.name, hints[f.name])
    ranges = {**RANGES, **getattr(module, "RANGES", {})}
    for f in dataclasses.fields(module.Hparams):
        if f.name != "objective":
            checkers[f.name] = _number_checker(f.name, ranges.get(f.name))
    for k, v in hp0.objective.items():
        if np.ndim(v) == 0:
            checkers["objective." + k] = _number_checker("objective." + k, None)
    for f in dataclasses.fields(env_params) if dataclasses.is_dataclass(env_params) else []:
        if np.ndim(getattr(env_params, f.name)) == 0:
            checkers["env." + f.name] = _number_checker("env." + f.name, None)

    prefixes = {"config": "config.", "hparams": "", "objective_params": "objective.", "env_params": "env."}
    axes_values, fixed = {}, {}
    for table, prefix in prefixes.items():
        for k, v in raw.get(table, {}).items():
            name = prefix + k
            if name not in checkers:
                known = sorted(c[len(prefix):] for c in checkers if c.startswith(prefix) and (prefix or "." not in c))
                _err(where, f"[{table}] has no key {k!r}; accepted: {', '.join(known)}")
            if mode == "random" and isinstance(v, dict):
                axes_values[name] = _distribution(where, table, k, v, checkers[name])
            elif _is_axis(name, v):
                if not v:
                    _err(where, f"[{table}].{k} is an empty list")
                axes_values[name] = [checkers[name](where, x) for x in v]
            else:
                fixed[name] = checkers[name](where, v)

    if mode == "grid":
        names = [k for k, v in axes_values.items()]
        settings = [dict(zip(names, combo)) for combo in itertools.product(*axes_values.values())]
    elif mode == "random":
        rng = np.random.default_rng(raw.get("sample_seed", 0))
        names = list(axes_values)
        settings = [{k: (v(rng) if callable(v) else v[rng.integers(len(v))]) for k, v in axes_values.items()}
                    for _ in range(raw["num_samples"])]
    else:
        if not raw.get("runs"):
            _err(where, "mode='list' needs at least one [[runs]] table")
        settings, names = [], []
        for i, entry in enumerate(raw["runs"]):
            if not isinstance(entry, dict):
                _err(where, f"runs[{i}] must be a table")
            s = {}
            for k, v in entry.items():
                if k not in checkers:
                    _err(where, f"runs[{i}] has unknown key {k!r}; accepted: {', '.join(sorted(checkers))}")
                s[k] = checkers[k](f"{where} runs[{i}]", v)
                names += [k] if k not in names else []
            settings.append(s)
        if axes_values:
            _err(where, f"mode='list' takes values from [[runs]]; lists elsewhere are ambiguous: {', '.join(axes_values)}")
    seed0 = raw.get("seed", 0)
    return Spec(agent=agent, env=env_id, objective=raw.get("objective", "ppo_clip"),
                seeds=list(range(seed0, seed0 + raw.get("seeds", 1))), settings=settings, axes=names, mode=mode,
                max_parallel=raw.get("max_parallel", 0), eval_every=raw.get("eval_every"),
                eval_episodes=raw.get("eval_episodes", 8), chunk=raw.get("chunk"), fixed=fixed)


def _is(v, t) -> bool:
    if t is int:
        return isinstance(v, int) and not isinstance(v, bool)
    if t is float:
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    return isinstance(v, t)


def _tname(t) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false", dict: "a table",
            list: "an array of tables"}.get(t, t.__name__)


def _is_axis(name: str, v) -> bool:
    if name == "config.hidden":  # a single value is itself a list of widths
        return isinstance(v, list) and bool(v) and all(isinstance(x, list) for x in v)
    return isinstance(v, list)


def _static_checker(field: str, hint):
    def check(where, v):
        if hint in (int, float, str, bool):
            if not _is(v, hint):
                _err(where, f"config.{field} must be {_tname(hint)}, got {type(v).__name__} {v!r}")
            return float(v) if hint is float else v
        if not (isinstance(v, list) and v and all(_is(w, int) and w > 0 for w in v)):
            _err(where, f"config.{field} must be a list of positive layer widths like [64, 64], got {v!r}")
        return tuple(v)

    return check


def _number_checker(name: str, rng):
    def check(where, v):
        if not _is(v, float):
            _err(where, f"{name} must be a number, got {type(v).__name__} {v!r}")
        v = float(v)
        if rng is not None:
            lo, hi, lo_incl = rng
            if (lo is not None and (v < lo or (v == lo and not lo_incl))) or (hi is not None and v > hi):
                _err(where, f"{name}={v!r} is out of range: must be in {'[' if lo_incl else '('}{lo}, "
                            f"{'∞)' if hi is None else str(hi) + ']'}")
        return v

    return check


def _distribution(where, table, key, d, check):
    if len(d) != 1 or next(iter(d)) not in ("uniform", "log_uniform", "choice"):
        _err(where, f"[{table}].{key}: a random axis is one of {{uniform = [lo, hi]}}, {{log_uniform = [lo, hi]}}, "
                    f"{{choice = [...]}}; got {d!r}")
    kind, arg = next(iter(d.items()))
    if not isinstance(arg, list) or not arg:
        _err(where, f"[{table}].{key}.{kind} must be a non-empty array")
    if kind == "choice":
        return [check(where, x) for x in arg]
    if len(arg) != 2:
        _err(where, f"[{table}].{key}.{kind} must be [lo, hi]")
    lo, hi = (check(where, x) for x in arg)
    if not lo < hi:
        _err(where, f"[{table}].{key}.{kind}: lo={lo} must be below hi={hi}")
    if kind == "log_uniform":
        if lo <= 0:
            _err(where, f"[{table}].{key}.log_uniform: lo={lo} must be positive")
        return lambda rng: float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    return lambda rng: float(rng.uniform(lo, hi))


# ----------------------------------------------------------------------------------------------
def run(spec: Spec, out: str | None = None, *, progress: bool = True, verbose: bool = True) -> dict:
    """Run every (setting, seed) of ``spec``; one compiled program per static setting.

    Returns ``{"rows": [...], "metrics": {group: metrics}, "groups": [...]}``; with ``out`` it also
    writes sweep.csv, sweep.json, curves.png and (2-D grids) heatmap.png.
    """
    import sys
    import time

    import jax
    import jax.numpy as jnp

    from rlx import envs, objectives
    from rlx.parallel import RunsMesh
    from rlx.progress import ProgressBar
    from rlx.run import run_population

    module = importlib.import_module(AGENTS[spec.agent])
    env, env_params0 = envs.make(spec.env)
    surrogate = objectives.get(spec.objective)
    runs = spec.runs
    static_of = lambda s: tuple(sorted((k, v) for k, v in {**spec.fixed, **s}.items() if k.startswith("config.")))
    groups: dict[tuple, list[int]] = {}
    for i, (s, _) in enumerate(runs):
        groups.setdefault(static_of(s), []).append(i)

    rows: list[dict | None] = [None] * len(runs)
    all_metrics, group_info = {}, []
    for g, (static, idx) in enumerate(groups.items()):
        try:
            config = module.Config(**{k[7:]: v for k, v in static})
            agent = module.make(config, env, env_params0, objective=surrogate)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"static setting {dict(static)}: {e}")
        base = agent.default_hparams()
        hps, eps, keys = [], [], []
        has_env_axis = any(k.startswith("env.") for s, _ in runs for k in {**spec.fixed, **s})
        for i in idx:
            s, seed = runs[i]
            s = {**spec.fixed, **s}
            hp = base.replace(**{k: jnp.float32(v) for k, v in s.items() if "." not in k})
            hp = hp.replace(objective={**hp.objective, **{k[10:]: jnp.float32(v) for k, v in s.items()
                                                          if k.startswith("objective.")}})
            hps.append(hp)
            ep = env_params0.replace(**{k[4:]: jnp.asarray(v, jnp.asarray(getattr(env_params0, k[4:])).dtype)
                                        for k, v in s.items() if k.startswith("env.")}) if has_env_axis else None
            eps.append(ep)
            keys.append(jax.random.PRNGKey(seed))
        stack = lambda xs: jax.tree.map(lambda *a: np.stack([np.asarray(x) for x in a]), *xs)
        hp_b, key_b = stack(hps), stack(keys)
        ep_b = stack(eps) if has_env_axis else None
        n_iter = agent.num_iterations
        eval_every = spec.eval_every or max(1, n_iter // 20)
        P = spec.max_parallel or len(idx)
        P = min(P, len(idx))
        mesh = RunsMesh(P)
        bar = ProgressBar(n_iter * math.ceil(len(idx) / P), agent.steps_per_iteration, runs=P,
                          desc=f"{spec.agent} group {g + 1}/{len(groups)}", disable=not progress)
        results, t0, offset = [], time.perf_counter(), 0
        if verbose:
            print(f"rlx sweep: group {g + 1}/{len(groups)} {dict(static) or '(defaults)'}: {len(idx)} runs "
                  f"in chunks of {P} on {len(mesh.devices)} device(s)", file=sys.stderr)
        cache = {}
        for c in range(0, len(idx), P):
            take = np.arange(c, c + P) % len(idx) if c + P > len(idx) else np.arange(c, c + P)  # pad the last chunk
            sub = lambda t: None if t is None else jax.tree.map(lambda x: x[take], t)
            res = run_population(agent, sub(key_b), sub(hp_b), sub(ep_b), num_iterations=n_iter,
                                 eval_every=eval_every, eval_episodes=spec.eval_episodes, chunk_iterations=spec.chunk,
                                 progress=(lambda it, o=offset: bar.callback(o + it)), mesh=mesh, cache=cache)
            offset += n_iter
            keep = min(P, len(idx) - c)
            results.append(jax.tree.map(lambda x: x[:keep], res.metrics))
        bar.close()
        wall = time.perf_counter() - t0
        metrics = jax.tree.map(lambda *xs: np.concatenate(xs), *results)
        all_metrics[g] = metrics
        group_info.append({"static": {k: v for k, v in static}, "runs": len(idx), "iterations": n_iter,
                           "steps_per_iteration": agent.steps_per_iteration, "wall_s": round(wall, 3),
                           "env_steps_per_s": round(n_iter * agent.steps_per_iteration * len(idx) / wall, 1),
                           "devices": [str(d) for d in mesh.devices]})
        for j, i in enumerate(idx):
            s, seed = runs[i]
            ev = metrics["eval/return"][j].astype(float)
            rows[i] = {**{k: _plain(s.get(k, spec.fixed.get(k))) for k in spec.axes}, "seed": seed,
                       "final_return": float(ev[-1]), "best_return": float(np.max(ev)),
                       "best_at_env_steps": int(metrics["eval/iteration"][j][int(np.argmax(ev))]
                                                * agent.steps_per_iteration),
                       "group": g, "_index": j}
    result = {"rows": rows, "metrics": all_metrics, "groups": group_info, "spec": dataclasses.asdict(spec)}
    if out:
        write(result, spec, out)
    return result


def _plain(v):
    return "x".join(map(str, v)) if isinstance(v, tuple) else v


def write(result: dict, spec: Spec, out: str) -> None:
    import csv

    os.makedirs(out, exist_ok=True)
    rows = [{k: v for k, v in r.items() if not k.startswith("_")} for r in result["rows"]]
    cols = list(rows[0])
    with open(os.path.join(out, "sweep.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, cols)
        w.writeheader()
        w.writerows(rows)
    curves = {}
    for r in result["rows"]:
        m = result["metrics"][r["group"]]
        curves.setdefault(_setting_name(r, spec.axes), []).append(
            {"iteration": m["eval/iteration"][r["_index"]].tolist(),
             "eval_return": m["eval/return"][r["_index"]].astype(float).tolist()})
    with open(os.path.join(out, "sweep.json"), "w") as f:
        json.dump({"spec": result["spec"], "groups": result["groups"], "table": rows, "curves": curves}, f,
                  indent=1, default=str)
    plot(result, spec, out)


def _setting_name(row, axes):
    return ", ".join(f"{k}={row[k]:g}" if isinstance(row[k], float) else f"{k}={row[k]}" for k in axes) or "default"


def plot(result: dict, spec: Spec, out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_setting: dict[str, list[dict]] = {}
    for r in result["rows"]:
        by_setting.setdefault(_setting_name(r, spec.axes), []).append(r)
    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=110)
    for (name, rs), color in zip(by_setting.items(), plt.cm.tab20.colors * 20):
        m = result["metrics"][rs[0]["group"]]
        per = result["groups"][rs[0]["group"]]["steps_per_iteration"]
        ev = np.stack([m["eval/return"][r["_index"]] for r in rs]).astype(float)
        x = m["eval/iteration"][rs[0]["_index"]] * per
        ax.plot(x, np.median(ev, 0), color=color, lw=1.4, label=f"{name} (n={len(rs)})")
        if len(rs) > 1:
            ax.fill_between(x, ev.min(0), ev.max(0), color=color, alpha=0.12, lw=0)
    ax.set_xlabel("env steps")
    ax.set_ylabel("deterministic eval return (median, min–max over seeds)")
    ax.set_title(f"{spec.agent} · {spec.env} · {len(by_setting)} settings × {len(spec.seeds)} seeds")
    ax.grid(alpha=0.3)
    if len(by_setting) <= 20:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "curves.png"))
    plt.close(fig)

    if spec.mode == "grid" and len(spec.axes) == 2:
        a, b = spec.axes
        order = lambda v: (0, float(v), "") if isinstance(v, (int, float)) else (1, 0.0, str(v))
        va = sorted({r[a] for r in result["rows"]}, key=order)
        vb = sorted({r[b] for r in result["rows"]}, key=order)
        grid = np.full((len(va), len(vb)), np.nan)
        for i, x in enumerate(va):
            for j, y in enumerate(vb):
                vals = [r["final_return"] for r in result["rows"] if r[a] == x and r[b] == y]
                grid[i, j] = np.median(vals)
        fig, ax = plt.subplots(figsize=(1.2 * len(vb) + 3, 0.8 * len(va) + 2.2), dpi=110)
        im = ax.imshow(grid, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(vb)), [f"{v:g}" if isinstance(v, float) else str(v) for v in vb])
        ax.set_yticks(range(len(va)), [f"{v:g}" if isinstance(v, float) else str(v) for v in va])
        ax.set_xlabel(b)
        ax.set_ylabel(a)
        for i in range(len(va)):
            for j in range(len(vb)):
                ax.text(j, i, f"{grid[i, j]:.0f}", ha="center", va="center", color="w", fontsize=8)
        fig.colorbar(im, label=f"median final return over {len(spec.seeds)} seeds")
        ax.set_title(f"{spec.agent} · {spec.env}")
        fig.tight_layout()
        fig.savefig(os.path.join(out, "heatmap.png"))
        plt.close(fig)

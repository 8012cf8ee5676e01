"""Meta-learning an objective's parameters with evolution strategies (evosax ≥ 0.2).

The outer loop evolves the ``params`` entry of an objective's hyperparameters (the drift
network of ``lpo`` / ``ta_lpo``); the inner loop is the agent's ordinary ``train``:

    for each generation g:
        population = es.ask(key_g)                             # P drift networks (antithetic)
        returns    = train(key_s, hp with params_i)            # all P × S runs of one task in
                                                               # one vmapped program, every task
                                                               # (env × horizon) in one jit call
        fitness_i  = mean over tasks and seeds of (R − R_lo) / (R_hi − R_lo)
        es.tell(population, −fitness)                          # evosax minimises

    from rlx import meta
    result = meta.meta_train(meta.MetaConfig(objective="lpo", envs=("CartPole-v1",), generations=50), out="runs/meta")
    surrogate = rlx.objectives.load("runs/meta/objective.npz")

Choices (all documented in :class:`MetaConfig`):
- Open_ES (default) uses antithetic sampling and evosax's centred-rank shaping
  (``centered_rank_fitness_shaping_fn``: ranks mapped to [−0.5, 0.5]); SNES and CMA_ES use
  their own rank-based recombination weights and evosax's plain sampling.
- Common random numbers: in one generation every population member trains with the same
  S seed keys, so rankings compare objectives, not seeds.
- Fitness normalisation uses the reference returns in :data:`REFERENCE_RETURNS` (or ones
  given in the config); the final return is the deterministic evaluation after the last
  iteration (``metrics["eval/return"][-1]``).
- TA-LPO: several ``inner_steps`` values give runs of different horizons; each horizon is
  its own compiled sub-program, and the drift sees n/N and N through ``PolicyBatch``.
- A generation's key is ``fold_in(PRNGKey(seed), generation)``, so a resumed run draws
  exactly the keys the uninterrupted run would have; checkpoints (orbax) hold the whole ES
  state, and resuming reproduces it bitwise.
- The exported objective (``objective.npz`` + ``objective.json``) is the ES *mean* after
  the last generation (the distribution's centre, less noisy than any single member);
  the single best member ever evaluated is exported too, as ``best_member.npz``.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import sys
import time
from typing import Callable, Optional, Sequence

import numpy as np

# Reference returns (R_lo, R_hi) per env for the normalised fitness (R − R_lo)/(R_hi − R_lo).
# R_lo ≈ a uniformly random policy's return, R_hi ≈ the best return reachable in the episode
# limit (CartPole: 500 steps; Acrobot/MountainCar: a solved run; Pendulum: a good swing-up;
# MinAtar: strong PPO returns after ~10M steps, as reported for gymnax/MinAtar).
REFERENCE_RETURNS: dict[str, tuple[float, float]] = {
    "CartPole-v1": (22.0, 500.0),
    "Acrobot-v1": (-500.0, -60.0),
    "MountainCar-v0": (-200.0, -100.0),
    "Pendulum-v1": (-1200.0, -150.0),
    "MountainCarContinuous-v0": (-35.0, 95.0),
    "Breakout-MinAtar": (0.0, 60.0),
    "SpaceInvaders-MinAtar": (0.0, 300.0),
    "Asterix-MinAtar": (0.0, 60.0),
    "Freeway-MinAtar": (0.0, 60.0),
}

STRATEGIES = ("open_es", "snes", "cma_es")
OPTIMIZERS = ("adam", "sgd")
BASES = ("lpo", "ta_lpo")


@dataclasses.dataclass(frozen=True)
class MetaConfig:
    """Everything that defines a meta-training run (saved as config.json; resume checks it).

    Attributes:
      objective: base objective whose ``params`` are evolved: "lpo" or "ta_lpo".
      envs: training env ids; each is its own compiled sub-program.
      inner_steps: total env steps of each inner PPO run; several values = several horizons
        (for TA-LPO), every (env, horizon) pair is one task.
      population: ES population size P (even for antithetic Open_ES).
      generations: number of ES generations.
      seeds: inner seeds S per member (common to all members in a generation).
      strategy: "open_es" | "snes" | "cma_es" (evosax.algorithms).
      sigma: initial / constant search std.
      lr: ES learning rate (Open_ES and SNES mean update).
      optimizer: "adam" | "sgd" for Open_ES's mean update.
      hidden: hidden width of the drift network.
      init_scale: output-layer scale of the initial drift network (``lpo_init(scale=...)``).
      ppo_weight, epsilon: fixed (not evolved) hparams of the objective; ppo_weight = 1 is the
        PPO-initialised variant D = ReLU(D_ppo + net − 1e-4).
      ppo: static PPOConfig overrides (num_envs, num_steps, update_epochs, ...), as pairs.
      ppo_hparams: PPO hyperparameter overrides (lr, ent_coef, ...), as pairs.
      eval_episodes: episodes of the final deterministic evaluation of each inner run.
      reference_returns: extra or overriding (env, lo, hi) triples for normalisation.
      seed: master seed.
      checkpoint_every: generations between orbax checkpoints.
    """

    objective: str = "lpo"
    envs: tuple[str, ...] = ("CartPole-v1",)
    inner_steps: tuple[int, ...] = (32_768,)
    population: int = 32
    generations: int = 100
    seeds: int = 1
    strategy: str = "open_es"
    sigma: float = 0.03
    lr: float = 0.03
    optimizer: str = "adam"
    hidden: int = 128
    init_scale: float = 1.0
    ppo_weight: float = 0.0
    epsilon: float = 0.2
    ppo: tuple[tuple[str, object], ...] = ()
    ppo_hparams: tuple[tuple[str, float], ...] = ()
    eval_episodes: int = 8
    reference_returns: tuple[tuple[str, float, float], ...] = ()
    seed: int = 0
    checkpoint_every: int = 1

    def tasks(self) -> list[tuple[str, int]]:
        return [(e, int(s)) for e in self.envs for s in self.inner_steps]

    def reference(self, env_id: str) -> tuple[float, float]:
        extra = {e: (lo, hi) for e, lo, hi in self.reference_returns}
        if env_id in extra:
            return extra[env_id]
        return REFERENCE_RETURNS[env_id]


def validate(cfg: MetaConfig) -> None:
    """Every check that can be made before compiling; errors name the field and accepted values."""
    def bad(field, msg):
        raise ValueError(f"MetaConfig.{field}: {msg}")

    if cfg.objective not in BASES:
        bad("objective", f"{cfg.objective!r} cannot be meta-trained; choose one of: {', '.join(BASES)}")
    if cfg.strategy not in STRATEGIES:
        bad("strategy", f"{cfg.strategy!r}; choose one of: {', '.join(STRATEGIES)}")
    if cfg.optimizer not in OPTIMIZERS:
        bad("optimizer", f"{cfg.optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}")
    for f in ("population", "generations", "seeds", "hidden", "eval_episodes", "checkpoint_every"):
        v = getattr(cfg, f)
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            bad(f, f"must be a positive integer, got {v!r}")
    if cfg.strategy == "open_es" and cfg.population % 2:
        bad("population", f"Open_ES samples antithetic pairs, so it must be even; got {cfg.population}")
    if cfg.population < 2:
        bad("population", f"must be at least 2, got {cfg.population}")
    for f in ("sigma", "lr"):
        if not (getattr(cfg, f) > 0):
            bad(f, f"must be > 0, got {getattr(cfg, f)!r}")
    if not cfg.envs:
        bad("envs", "give at least one env id")
    if not cfg.inner_steps or any(int(s) <= 0 for s in cfg.inner_steps):
        bad("inner_steps", f"must be positive step counts, got {cfg.inner_steps!r}")
    known = {**REFERENCE_RETURNS, **{e: (lo, hi) for e, lo, hi in cfg.reference_returns}}
    for e in cfg.envs:
        if e not in known:
            bad("envs", f"no reference returns for {e!r} (needed to normalise fitness); known: "
                        f"{', '.join(sorted(known))}; add one with --ref-returns {e}=LO,HI")
        lo, hi = known[e]
        if not hi > lo:
            bad("reference_returns", f"{e}: need R_hi > R_lo, got ({lo}, {hi})")


# --------------------------------------------------------------------------------------
# The inner loop: P × S PPO runs per task, every task in one jitted, sharded call
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class Inner:
    """``fn(seed_keys [S, 2], params [P, ...]) -> raw final returns [P, S, T]`` plus bookkeeping.

    ``lo``/``hi`` [T] are the reference returns that normalise task t; ``env_steps`` is the
    number of env steps one call runs (for throughput); ``tasks`` names the T tasks.
    """

    fn: Callable
    tasks: list[str]
    env_steps: int
    lo: np.ndarray
    hi: np.ndarray


_INNER_CACHE: dict = {}


def _ppo_parts(cfg: MetaConfig, env_id: str, steps: int):
    from rlx import envs, objectives
    from rlx.agents import ppo
    from rlx.run import make_train

    import jax.numpy as jnp

    env, env_params = envs.make(env_id)
    pcfg = ppo.PPOConfig(**{**dict(cfg.ppo), "total_timesteps": int(steps)})
    agent = ppo.make(pcfg, env, env_params, objective=objectives.get(cfg.objective))
    hp = agent.default_hparams()
    hp = hp.replace(**{k: jnp.float32(v) for k, v in cfg.ppo_hparams})
    hp = hp.replace(objective={**hp.objective, "ppo_weight": jnp.float32(cfg.ppo_weight),
                               "epsilon": jnp.float32(cfg.epsilon)})
    n = agent.num_iterations
    train = make_train(agent, eval_every=n, eval_episodes=cfg.eval_episodes)
    return train, hp, n * agent.steps_per_iteration


def make_ppo_inner(cfg: MetaConfig) -> Inner:
    """PPO with the evolved objective on every (env, horizon) task, all in one jitted program.

    The runs axis (P·S) is sharded over the host devices (``rlx.parallel.shard_runs``).
    Built programs are cached per configuration, so a resumed run in the same process
    does not recompile.
    """
    import jax
    import jax.numpy as jnp

    from rlx.parallel import shard_runs

    key = (cfg.objective, cfg.envs, cfg.inner_steps, cfg.population, cfg.seeds, cfg.ppo, cfg.ppo_hparams,
           cfg.ppo_weight, cfg.epsilon, cfg.eval_episodes, cfg.reference_returns)
    if key in _INNER_CACHE:
        return _INNER_CACHE[key]
    tasks = cfg.tasks()
    parts = [_ppo_parts(cfg, e, s) for e, s in tasks]
    P, S = cfg.population, cfg.seeds
    lo = np.array([cfg.reference(e)[0] for e, _ in tasks], np.float32)
    hi = np.array([cfg.reference(e)[1] for e, _ in tasks], np.float32)

    def runs(keys, params):  # keys [R, 2], params [R, ...]: one (member, seed) pair per run
        out = []
        for t, (train, hp, _) in enumerate(parts):
            def one(k, p):
                _, m = train(jax.random.fold_in(k, t), hp.replace(objective={**hp.objective, "params": p}))
                return m["eval/return"][-1]

            out.append(jax.vmap(one)(keys, params))
        return jnp.stack(out, axis=-1)  # [R, T]

    call, _ = shard_runs(runs, P * S)

    def fn(seed_keys, params):
        keys = jnp.tile(seed_keys, (P, 1))  # run (i, s) uses seed key s: common random numbers
        flat = jax.tree.map(lambda x: jnp.repeat(x, S, axis=0), params)
        ret = call(keys, flat).reshape(P, S, len(tasks))
        return ret

    inner = Inner(fn=fn, tasks=[f"{e}@{s}" for e, s in tasks], env_steps=P * S * sum(p[2] for p in parts), lo=lo, hi=hi)
    _INNER_CACHE[key] = inner
    return inner


# --------------------------------------------------------------------------------------
# The outer loop
# --------------------------------------------------------------------------------------


def initial_params(cfg: MetaConfig) -> dict:
    """The ES's starting mean: ``lpo_init``/``ta_lpo_init`` with ``hidden`` and ``init_scale``."""
    import jax

    from rlx import objectives

    init = objectives.lpo_init if cfg.objective == "lpo" else objectives.ta_lpo_init
    return init(jax.random.fold_in(jax.random.PRNGKey(cfg.seed), 1_000_003), hidden=cfg.hidden, scale=cfg.init_scale)


def make_strategy(cfg: MetaConfig, solution):
    """``(es, es_params)`` for the configured evosax algorithm."""
    import optax
    from evosax.algorithms import CMA_ES, SNES, Open_ES
    from evosax.core.fitness_shaping import centered_rank_fitness_shaping_fn
    import jax.numpy as jnp

    if cfg.strategy == "open_es":
        opt = optax.adam(cfg.lr) if cfg.optimizer == "adam" else optax.sgd(cfg.lr)
        es = Open_ES(population_size=cfg.population, solution=solution, use_antithetic_sampling=True,
                     optimizer=opt, std_schedule=optax.constant_schedule(cfg.sigma),
                     fitness_shaping_fn=centered_rank_fitness_shaping_fn)
        return es, es.default_params
    if cfg.strategy == "snes":
        es = SNES(population_size=cfg.population, solution=solution, optimizer=optax.sgd(cfg.lr))
        return es, es.default_params.replace(std_init=jnp.float32(cfg.sigma))
    es = CMA_ES(population_size=cfg.population, solution=solution)
    return es, es.default_params.replace(std_init=jnp.float32(cfg.sigma))


@dataclasses.dataclass
class MetaResult:
    config: MetaConfig
    es_state: object
    mean_params: dict
    best_params: dict
    history: list[dict]
    out: Optional[str]


_ES_CACHE: dict = {}


def _generation_keys(master, g: int, seeds: int):
    """(ask key, S seed keys, tell key) of generation g: a pure function of (seed, g)."""
    import jax

    @jax.jit
    def keys(master, g):
        k_ask, k_inner, k_tell = jax.random.split(jax.random.fold_in(master, g), 3)
        return k_ask, jax.random.split(k_inner, seeds), k_tell

    if seeds not in _KEYS_CACHE:
        _KEYS_CACHE[seeds] = keys
    return _KEYS_CACHE[seeds](master, g)


_KEYS_CACHE: dict = {}


def _fitness(raw, lo, hi):
    """Normalised fitness [P]: mean over seeds and tasks of (R − R_lo)/(R_hi − R_lo)."""
    import jax

    global _FITNESS_JIT
    if _FITNESS_JIT is None:
        _FITNESS_JIT = jax.jit(lambda raw, lo, hi: ((raw - lo) / (hi - lo)).mean(axis=(1, 2)))
    return _FITNESS_JIT(raw, lo, hi)


_FITNESS_JIT = None


def _es_functions(cfg: MetaConfig, es, es_params):
    """Jitted ``ask``/``tell``, cached per ES configuration so a resumed run does not recompile them."""
    import jax

    key = dataclasses.replace(cfg, generations=1, checkpoint_every=1)
    if key not in _ES_CACHE:
        _ES_CACHE[key] = (jax.jit(lambda k, s: es.ask(k, s, es_params)),
                          jax.jit(lambda k, pop, fit, s: es.tell(k, pop, fit, s, es_params)))
    return _ES_CACHE[key]


def _config_json(cfg: MetaConfig) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def _checkpoint_manager(out: str):
    import orbax.checkpoint as ocp

    return ocp.CheckpointManager(os.path.abspath(os.path.join(out, "checkpoints")),
                                 options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True))


def meta_train(cfg: MetaConfig, out: Optional[str] = None, *, resume: bool = False, inner: Optional[Inner] = None,
               progress: bool = True, stop_after: Optional[int] = None,
               max_minutes: Optional[float] = None,
               callback: Optional[Callable[[dict], None]] = None) -> MetaResult:
    """Run (or resume) ES meta-training; returns the final ES state, the mean and best params, the history.

    Args:
      cfg: the run's :class:`MetaConfig`.
      out: output directory (config.json, log.csv, history.json, checkpoints/, fitness.png,
        summary.json, objective.npz/.json, best_member.npz/.json). None: nothing is written.
      resume: continue from the newest checkpoint in ``out`` (its config must match).
      inner: the inner evaluation; default :func:`make_ppo_inner` (tests pass a toy one).
      progress: show a tqdm bar over generations.
      stop_after: stop after this many generations in total (simulates an interruption;
        the run can then be resumed to ``cfg.generations``).
      max_minutes: stop after the first generation that ends past this wall-clock budget
        (a checkpoint is written; ``--resume`` continues).
      callback: called with each generation's log row after it is logged and checkpointed.
    """
    import jax
    import jax.numpy as jnp
    from tqdm.auto import tqdm

    validate(cfg)
    inner = inner or make_ppo_inner(cfg)
    solution = initial_params(cfg)
    es, es_params = make_strategy(cfg, solution)
    master = jax.random.PRNGKey(cfg.seed)
    state = es.init(jax.random.fold_in(master, 2**30), solution, es_params)
    history: list[dict] = []
    start = 0

    mngr = None
    if out is not None:
        os.makedirs(out, exist_ok=True)
        cfg_path = os.path.join(out, "config.json")
        if resume and os.path.exists(cfg_path):
            with open(cfg_path) as f:
                saved = json.load(f)
            mine = _config_json(cfg)
            diff = [k for k in mine if k not in ("generations", "checkpoint_every") and saved.get(k) != mine[k]]
            if diff:
                raise ValueError(f"{cfg_path}: cannot resume, config field {diff[0]!r} differs "
                                 f"(saved {saved.get(diff[0])!r}, now {mine[diff[0]]!r})")
        with open(cfg_path, "w") as f:
            json.dump(_config_json(cfg), f, indent=2)
        mngr = _checkpoint_manager(out)
        if resume and mngr.latest_step() is not None:
            import orbax.checkpoint as ocp

            step = mngr.latest_step()
            target = {"es_state": jax.tree.map(ocp.utils.to_shape_dtype_struct, state)}
            restored = mngr.restore(step, args=ocp.args.StandardRestore(target))
            state = jax.tree.map(jnp.asarray, restored["es_state"])
            start = int(step)
            hist_path = os.path.join(out, "history.json")
            if os.path.exists(hist_path):
                with open(hist_path) as f:
                    history = [h for h in json.load(f) if h["generation"] < start]
        elif resume:
            print(f"rlx meta-train: no checkpoint in {out}; starting from generation 0", file=sys.stderr)

    ask, tell = _es_functions(cfg, es, es_params)
    lo, hi = jnp.asarray(inner.lo), jnp.asarray(inner.hi)
    end = cfg.generations if stop_after is None else min(cfg.generations, int(stop_after))

    best_fit = -np.inf
    best_params = jax.tree.map(np.asarray, es.get_mean(state))
    if history:
        best_fit = max(h["best"] for h in history)
        best_path = os.path.join(out, "best_member.npz")
        if os.path.exists(best_path):  # the best member of the earlier session(s)
            from rlx.objectives import export

            best_params = export.read(best_path)[1]["params"]
    bar = tqdm(total=cfg.generations, initial=start, desc=f"meta-train {cfg.objective}", unit="gen",
               disable=not progress, dynamic_ncols=True, file=sys.stderr)
    t_start = time.perf_counter()
    for g in range(start, end):
        if max_minutes is not None and g > start and time.perf_counter() - t_start > 60.0 * max_minutes:
            end = g
            if out is not None and g % cfg.checkpoint_every:
                import orbax.checkpoint as ocp

                mngr.save(g, args=ocp.args.StandardSave({"es_state": state}))
                mngr.wait_until_finished()
            break
        t0 = time.perf_counter()
        k_ask, seed_keys, k_tell = _generation_keys(master, g, cfg.seeds)
        population, state = ask(k_ask, state)
        raw = inner.fn(seed_keys, population)  # [P, S, T]
        fitness = _fitness(raw, lo, hi)  # [P]
        state, _ = tell(k_tell, population, -fitness, state)  # evosax minimises
        fit = np.asarray(fitness, np.float64)
        raw_np = np.asarray(raw, np.float64)
        i_best = int(np.nanargmax(np.where(np.isfinite(fit), fit, -np.inf)))
        if np.isfinite(fit[i_best]) and fit[i_best] > best_fit:
            best_fit = float(fit[i_best])
            best_params = jax.tree.map(lambda x: np.asarray(x[i_best]), population)
        row = {"generation": g, "mean": float(np.nanmean(fit)), "best": float(np.nanmax(fit)),
               "std": float(np.nanstd(fit)), "min": float(np.nanmin(fit)), "nan_members": int(np.sum(~np.isfinite(fit))),
               "wall_s": round(time.perf_counter() - t0, 3), "gen_s": None}
        for t, name in enumerate(inner.tasks):
            row[f"return/{name}"] = float(np.nanmean(raw_np[..., t]))
        history.append(row)
        bar.update(1)
        bar.set_postfix_str(f"mean {row['mean']:.3f} best {row['best']:.3f}", refresh=False)
        if out is not None:
            _write_logs(out, history)
            if (g + 1) % cfg.checkpoint_every == 0 or g + 1 == end:
                import orbax.checkpoint as ocp

                mngr.save(g + 1, args=ocp.args.StandardSave({"es_state": state}))
                mngr.wait_until_finished()
        row["gen_s"] = round(time.perf_counter() - t0, 3)  # everything: ask, inner, tell, logs, checkpoint
        if callback is not None:
            callback(row)
    bar.close()
    if mngr is not None:
        mngr.close()

    mean_params = jax.tree.map(np.asarray, es.get_mean(state))
    result = MetaResult(cfg, state, mean_params, best_params, history, out)
    if out is not None:
        _finish(result, wall_s=time.perf_counter() - t_start, inner=inner)
    return result


def _write_logs(out: str, history: list[dict]) -> None:
    with open(os.path.join(out, "history.json"), "w") as f:
        json.dump(history, f, indent=1)
    keys = list(history[0])
    with open(os.path.join(out, "log.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for h in history:
            w.writerow({k: h.get(k, "") for k in keys})


def objective_hparams(cfg: MetaConfig, params) -> dict:
    """The full hparams dict of the base objective with evolved ``params``."""
    return {"params": {k: np.asarray(v, np.float32) for k, v in params.items()},
            "ppo_weight": np.float32(cfg.ppo_weight), "epsilon": np.float32(cfg.epsilon)}


def _finish(result: MetaResult, *, wall_s: float, inner: Inner) -> None:
    from rlx import objectives

    cfg, out, history = result.config, result.out, result.history
    meta = {"trained_by": "rlx meta-train", "config": _config_json(cfg), "generations_done": len(history)}
    objectives.save(os.path.join(out, "objective.npz"), cfg.objective, objective_hparams(cfg, result.mean_params),
                    {**meta, "which": "ES mean after the last generation"})
    objectives.save(os.path.join(out, "best_member.npz"), cfg.objective, objective_hparams(cfg, result.best_params),
                    {**meta, "which": "best single population member evaluated"})
    if history:
        plot_fitness(os.path.join(out, "fitness.png"), history, f"{cfg.strategy} · {cfg.objective} · "
                     f"{', '.join(cfg.envs)}")
    summary = {
        "objective": cfg.objective, "envs": list(cfg.envs), "tasks": inner.tasks, "strategy": cfg.strategy,
        "population": cfg.population, "seeds": cfg.seeds, "generations": len(history),
        "inner_env_steps_per_generation": inner.env_steps,
        "reference_returns": {e: list(cfg.reference(e)) for e in cfg.envs},
        "fitness": "mean over tasks and seeds of (R_final - R_lo)/(R_hi - R_lo)",
        "fitness_history": {k: [h[k] for h in history] for k in ("mean", "best", "std")},
        "history": history, "wall_s_this_session": round(wall_s, 2),
        "exported": {"objective": "objective.npz", "best_member": "best_member.npz"},
        "config": _config_json(cfg),
    }
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)


# --------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------


def plot_fitness(path: str, history: Sequence[dict], title: str = "") -> None:
    """Mean (± std) and best normalised fitness of each generation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = np.array([h["generation"] for h in history])
    mean = np.array([h["mean"] for h in history])
    std = np.array([h["std"] for h in history])
    best = np.array([h["best"] for h in history])
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    ax.plot(g, mean, color="C0", label="population mean")
    ax.fill_between(g, mean - std, mean + std, color="C0", alpha=0.2, label="± std")
    ax.plot(g, best, color="C1", label="best member")
    ax.set_xlabel("generation")
    ax.set_ylabel("normalised final return")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_drift_surface(path: str, surrogate, hparams: Optional[dict] = None, *, ratio=(0.0, 2.0),
                       advantage=(-2.0, 2.0), progress: Sequence[float] = (0.0, 0.5, 1.0), horizon: float = 100.0,
                       title: str = "", compare: Sequence[str] = ("ppo",)) -> None:
    """Heat maps of the drift D(r, A) = r·A + loss-per-sample, over ratio × advantage.

    ``surrogate`` is a :class:`~rlx.objectives.Surrogate` (e.g. ``objectives.load(...)``) or
    a registered name; ``hparams`` default to ``surrogate.init``. The drift is recovered
    from the surrogate's loss on single samples: for a mirror-learning loss
    L = −(r·A − D), D = L + r·A. TA-LPO gets one panel per ``progress`` value; ``compare``
    adds reference panels ("ppo", "dpo").
    """
    import jax
    import jax.numpy as jnp
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rlx import objectives

    s = objectives.get(surrogate) if isinstance(surrogate, str) else objectives.as_surrogate(surrogate)
    hp = s.init(jax.random.PRNGKey(0)) if hparams is None else hparams
    r = np.linspace(max(ratio[0], 1e-3), ratio[1], 201, dtype=np.float32)
    a = np.linspace(advantage[0], advantage[1], 201, dtype=np.float32)
    R, A = np.meshgrid(r, a)

    def drift_of(loss, hp_, prog):
        def per_sample(lr_, a_):
            b = objectives.PolicyBatch(lr_[None], a_[None], jnp.float32(prog), jnp.float32(horizon))
            return loss(b, **hp_) + jnp.exp(lr_) * a_

        f = jax.jit(jax.vmap(per_sample))
        return np.asarray(f(jnp.log(R.ravel()), A.ravel())).reshape(R.shape)

    panels = []
    progs = list(progress) if s.loss is objectives.ta_lpo else [0.0]
    for p in progs:
        name = "learned" + (f", n/N={p:g}" if len(progs) > 1 else "")
        panels.append((name, drift_of(s.loss, hp, p)))
    refs = {"ppo": (objectives.ppo_clip, {"epsilon": 0.2}), "dpo": (objectives.dpo, {})}
    for c in compare:
        loss, h = refs[c]
        panels.append((c.upper(), drift_of(loss, h, 0.0)))
    vmax = max(float(np.nanpercentile(d, 99)) for _, d in panels) or 1.0
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), dpi=120, squeeze=False)
    for ax, (name, d) in zip(axes[0], panels):
        im = ax.pcolormesh(R, A, d, cmap="viridis", vmin=0.0, vmax=vmax, shading="auto")
        ax.contour(R, A, d, levels=6, colors="white", linewidths=0.5, alpha=0.6)
        ax.axvline(1.0, color="w", lw=0.6, ls="--")
        ax.set_xlabel("ratio r")
        ax.set_ylabel("advantage A")
        ax.set_title(name, fontsize=10)
    fig.colorbar(im, ax=axes[0].tolist(), label="drift D(r, A)")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


# --------------------------------------------------------------------------------------
# CLI: rlx meta-train
# --------------------------------------------------------------------------------------


def _pairs(items: Sequence[str], flag: str, cast=float) -> tuple:
    out = []
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise SystemExit(f"rlx meta-train: {flag} {item!r}: expected KEY=VALUE")
        out.append((k.replace("-", "_"), cast(v)))
    return tuple(out)


def _ppo_value(v: str):
    if "," in v:
        return tuple(int(x) for x in v.split(",") if x)
    for t in (int, float):
        try:
            return t(v)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(v.lower(), v)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rlx meta-train", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                description="Meta-train an objective's drift network with evolution strategies; "
                                            "the inner loop is PPO on every --envs × --inner-steps task.")
    d = MetaConfig()
    p.add_argument("--objective", default=d.objective, choices=BASES, help="objective whose params are evolved")
    p.add_argument("--envs", default=",".join(d.envs), help="comma-separated training env ids")
    p.add_argument("--inner-steps", default=",".join(map(str, d.inner_steps)),
                   help="env steps per inner run; a comma list gives several horizons (TA-LPO)")
    p.add_argument("--population", type=int, default=d.population)
    p.add_argument("--generations", type=int, default=d.generations)
    p.add_argument("--seeds", type=int, default=d.seeds, help="inner seeds per member")
    p.add_argument("--strategy", default=d.strategy, choices=STRATEGIES)
    p.add_argument("--sigma", type=float, default=d.sigma)
    p.add_argument("--lr", type=float, default=d.lr, help="ES learning rate")
    p.add_argument("--optimizer", default=d.optimizer, choices=OPTIMIZERS)
    p.add_argument("--hidden", type=int, default=d.hidden, help="drift-network width")
    p.add_argument("--init-scale", type=float, default=d.init_scale, help="output scale of the initial drift net")
    p.add_argument("--ppo-weight", type=float, default=d.ppo_weight, help="1 = PPO-initialised variant")
    p.add_argument("--epsilon", type=float, default=d.epsilon)
    p.add_argument("--ppo", action="append", default=[], metavar="KEY=VALUE",
                   help="inner PPOConfig override, e.g. num_envs=8 (repeatable)")
    p.add_argument("--ppo-hparam", action="append", default=[], metavar="KEY=VALUE",
                   help="inner PPO hyperparameter override, e.g. lr=1e-3 (repeatable)")
    p.add_argument("--eval-episodes", type=int, default=d.eval_episodes)
    p.add_argument("--ref-returns", action="append", default=[], metavar="ENV=LO,HI",
                   help="reference returns for fitness normalisation (repeatable)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument("--max-minutes", type=float, default=None, help="stop (with a checkpoint) once this wall time is used")
    p.add_argument("--no-progress", action="store_true")
    return p


def config_from_args(args) -> MetaConfig:
    try:
        steps = tuple(int(s) for s in args.inner_steps.split(",") if s.strip())
    except ValueError:
        raise SystemExit(f"rlx meta-train: --inner-steps: expected integers like 32768,65536, got {args.inner_steps!r}")
    refs = []
    for item in args.ref_returns:
        e, sep, v = item.partition("=")
        try:
            lo, hi = (float(x) for x in v.split(","))
        except ValueError:
            raise SystemExit(f"rlx meta-train: --ref-returns {item!r}: expected ENV=LO,HI") from None
        refs.append((e, lo, hi))
    return MetaConfig(
        objective=args.objective, envs=tuple(e.strip() for e in args.envs.split(",") if e.strip()),
        inner_steps=steps, population=args.population, generations=args.generations, seeds=args.seeds,
        strategy=args.strategy, sigma=args.sigma, lr=args.lr, optimizer=args.optimizer, hidden=args.hidden,
        init_scale=args.init_scale, ppo_weight=args.ppo_weight, epsilon=args.epsilon,
        ppo=tuple((k, (v,) if k == "hidden" and isinstance(v, int) else v) for k, v in _pairs(args.ppo, "--ppo", _ppo_value)), ppo_hparams=_pairs(args.ppo_hparam, "--ppo-hparam"),
        eval_episodes=args.eval_episodes, reference_returns=tuple(refs), seed=args.seed,
        checkpoint_every=args.checkpoint_every)


def meta_train_command(argv: list[str]) -> dict:
    """``rlx meta-train ...``: validate, run, write summary.json, fitness.png, objective.npz."""
    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    try:
        validate(cfg)
        from rlx import envs

        for e in cfg.envs:
            envs.validate_id(e)
        print(f"rlx meta-train: {cfg.strategy} on {cfg.objective}, population {cfg.population} × {cfg.seeds} seed(s) × "
              f"{len(cfg.tasks())} task(s); compiling...", file=sys.stderr)
        t0 = time.perf_counter()
        inner = make_ppo_inner(cfg)
    except (ValueError, TypeError) as e:
        raise SystemExit(f"rlx meta-train: {e}")
    result = meta_train(cfg, args.out, resume=args.resume, inner=inner, progress=not args.no_progress,
                        max_minutes=args.max_minutes)
    with open(os.path.join(args.out, "summary.json")) as f:
        summary = json.load(f)
    if result.history:
        h = result.history[-1]
        print(f"generation {h['generation']}: mean fitness {h['mean']:.4f}, best {h['best']:.4f} · "
              f"{time.perf_counter() - t0:.1f} s · wrote {args.out}/ (objective.npz, summary.json, fitness.png)")
    return summary

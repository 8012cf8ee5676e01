"""JAX-CORL's IQL (the anchor), one seed in one process, timed like bench_iql.py.

    experiments/bench/.venv-jaxcorl/bin/python experiments/bench/anchor_jaxcorl_iql.py --seed 0 --out F.json

Needs ``bash experiments/bench/setup_anchors.sh iql``: the venv, and JAX-CORL's
algos/iql.py copied (never committed) to experiments/bench/.anchor-src/jaxcorl_iql.py.
This script imports that file and uses its own pieces: ``IQLConfig``, ``Transition``,
``create_iql_train_state`` and ``IQL.update_n_times``, jitted exactly as its ``__main__``
does (``jax.jit(IQL().update_n_times, static_argnums=(3,))``, 8 gradient steps per call,
the dataset passed as an argument, a host-side key split per call). Its defaults are kept:
256×256, batch 256, layer norm in the value net, cosine-decayed actor lr over
``max_steps`` (set to --steps).

The file imports d4rl, gym and wandb at the top and parses ``OmegaConf.from_cli()`` (the
command line) at import. None of those three is installed (no MuJoCo here, no network):
empty stand-in modules go into sys.modules first, and sys.argv is emptied while the file
is imported. They are used only by its D4RL loader, its evaluation and its __main__ block,
which are not called. Data: iql_common.hopper_like, the same arrays rlx's side gets
(actions clipped to ±(1 − 1e-5) as the anchor's loader does; dones = terminals, as there).

Timing: the update is compiled ahead of time (compile_s); start-up is process launch ->
ready to run the first gradient step; then --steps gradient steps run as calls of 8,
blocked and timed every --group steps; steps_per_s is from the median group (the first
excluded). FLOPs: XLA's count of the same update built with n_jitted_updates=1 (its loop
is a Python loop, unrolled, so that program is exactly one gradient step).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import iql_common  # noqa: E402

T_LAUNCH = iql_common.launch_time()
ANCHOR_FILE = os.path.join(HERE, ".anchor-src", "jaxcorl_iql.py")


def import_anchor(path: str = ANCHOR_FILE):
    if not os.path.exists(path):
        raise SystemExit(f"{path} is missing: run `bash experiments/bench/setup_anchors.sh iql` first")
    for name in ("d4rl", "gym", "wandb"):  # stand-ins, even if installed: the pieces we call never use them
        sys.modules.setdefault(name, types.ModuleType(name))
    if not hasattr(sys.modules["gym"], "Env"):
        sys.modules["gym"].Env = type("Env", (), {})  # appears in a type annotation, evaluated at import
    xla_flags = os.environ.get("XLA_FLAGS")
    argv, sys.argv = sys.argv, sys.argv[:1]  # the file parses OmegaConf.from_cli() at import
    try:
        spec = importlib.util.spec_from_file_location("jaxcorl_iql", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.argv = argv
        # The file sets XLA_FLAGS to a GPU-only flag, replacing whatever was there.
        if xla_flags is None:
            os.environ.pop("XLA_FLAGS", None)
        else:
            os.environ["XLA_FLAGS"] = xla_flags
    return mod


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=20_000, help="gradient steps (a multiple of 8)")
    ap.add_argument("--group", type=int, default=1_000, help="gradient steps per timed block")
    ap.add_argument("--transitions", type=int, default=1_000_000)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    load_before = os.getloadavg()
    marks = {"python_started": time.time() - T_LAUNCH}
    mod = import_anchor()
    import jax
    import jax.numpy as jnp
    import numpy as np
    marks["anchor_and_jax_imported"] = time.time() - T_LAUNCH

    config = mod.IQLConfig(seed=args.seed, max_steps=args.steps, batch_size=256, hidden_dims=(256, 256))
    per_call = config.n_jitted_updates
    if args.steps % per_call or args.group % per_call:
        ap.error(f"--steps and --group must be multiples of n_jitted_updates={per_call}")

    a = iql_common.hopper_like(args.transitions, seed=0)
    lim = 1 - 1e-5
    dataset = mod.Transition(
        observations=jnp.asarray(a["obs"]),
        actions=jnp.asarray(np.clip(a["action"], -lim, lim)),
        rewards=jnp.asarray(a["reward"]),
        next_observations=jnp.asarray(a["next_obs"]),
        dones=jnp.asarray(a["terminated"].astype(np.float32)),
        dones_float=jnp.asarray((a["terminated"] | a["truncated"]).astype(np.float32)),
    )
    marks["data_ready"] = time.time() - T_LAUNCH

    rng = jax.random.PRNGKey(config.seed)
    rng, subkey = jax.random.split(rng)
    example = jax.tree_util.tree_map(lambda x: x[0], dataset)
    train_state = mod.create_iql_train_state(subkey, example.observations, example.actions, config)
    jax.block_until_ready(train_state)
    marks["state_ready"] = time.time() - T_LAUNCH

    update_fn = jax.jit(mod.IQL().update_n_times, static_argnums=(3,))
    rng, subkey = jax.random.split(rng)
    t0 = time.perf_counter()
    compiled = update_fn.lower(train_state, dataset, subkey, config).compile()
    compile_s = time.perf_counter() - t0
    marks["compiled"] = time.time() - T_LAUNCH
    startup_s = marks["compiled"]

    calls_per_group = args.group // per_call
    group_s, info = [], None
    done = 0
    while done < args.steps:
        n = min(calls_per_group, (args.steps - done) // per_call)
        t0 = time.perf_counter()
        for _ in range(n):
            rng, subkey = jax.random.split(rng)
            train_state, info = compiled(train_state, dataset, subkey)
        jax.block_until_ready((train_state, info))
        group_s.append((n * per_call, time.perf_counter() - t0))
        done += n * per_call
    wall_s = time.time() - T_LAUNCH
    load_after = os.getloadavg()
    rates = [steps / s for steps, s in group_s]
    steps_per_s = iql_common.median(rates[1:] if len(rates) > 1 else rates)
    finite = bool(all(np.isfinite(np.asarray(v)) for v in info.values()))

    # XLA's count of one gradient step: the same update with n_jitted_updates=1.
    cfg1 = config.model_copy(update={"n_jitted_updates": 1})
    flops_step = iql_common.cost_flops(update_fn.lower(train_state, dataset, subkey, cfg1).compile())
    flops_call = iql_common.cost_flops(compiled)

    out = {
        "framework": "JAX-CORL", "algo": "iql", "anchor_file": ANCHOR_FILE,
        "anchor_commit": _read(os.path.join(HERE, ".anchor-src", "jaxcorl_iql.commit")),
        "seed": args.seed, "seeds": 1, "devices": [str(d) for d in jax.devices()], "batch_size": config.batch_size,
        "hidden": list(config.hidden_dims), "n_jitted_updates": per_call, "transitions": args.transitions,
        "steps_per_seed": args.steps,
        "compile_s": compile_s, "startup_s": startup_s, "startup_breakdown_s": marks,
        "group_steps_s": group_s, "steps_per_s": steps_per_s, "steps_per_s_per_seed": steps_per_s,
        "wall_s": wall_s, "e2e_steps_per_s": args.steps / wall_s,
        "xla_flops_per_step": flops_step,
        "xla_flops_per_call_div_calls": None if flops_call is None else flops_call / per_call,
        "gflops_per_s": None if flops_step is None else flops_step * steps_per_s / 1e9,
        "losses_finite": finite,
        "loadavg_before": load_before, "loadavg_after": load_after,
        "versions": {"jax": jax.__version__, "python": sys.version.split()[0]},
    }
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
    print(json.dumps({k: out[k] for k in ("seed", "compile_s", "startup_s", "steps_per_s", "wall_s", "e2e_steps_per_s",
                                          "xla_flops_per_step", "gflops_per_s", "losses_finite")}))


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


if __name__ == "__main__":
    main()

"""The run loop, written once for every agent: ``make_train(agent) -> train(key, hp)``.

``train`` is a pure function, so seeds × hyperparameters × env variants are one program:

    train = rlx.make_train(agent, eval_every=50)
    state, metrics = jax.jit(jax.vmap(train))(jax.random.split(key, 8), hp_batch)

It is one scan over iterations; every ``eval_every`` iterations the policy is evaluated
deterministically and a progress callback may report to the host (once per evaluation,
never per step).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from rlx import envs
from rlx.agent import Agent

# Arrays a program closes over (an offline agent's dataset) become arguments of the compiled
# program instead of constants embedded in its HLO: a 1M-transition dataset otherwise makes an
# ~88 MB program and adds seconds of compile time (measured: 2.0 s → 0.5 s for a sampling
# step). jax's switch for this is global; rlx turns it on when the run loop is imported.
try:
    jax.config.update("jax_use_simplified_jaxpr_constants", True)
except (AttributeError, KeyError, ValueError):  # an older or newer jax without the switch
    pass


def _threefry_lowering_by_size(min_elements: int = 16) -> None:
    """On CPU, lower large threefry hashes straight-line and small ones as jax's 5-trip loop.

    jax lowers threefry2x32 on CPU as a loop and everywhere else straight-line. Each is slow
    somewhere: in a single run's innermost loops the tiny hashes (a few values each) lowered
    straight-line fuse into kernels of thousands of ops that LLVM compiles slowly, while large
    hashes lowered as a loop cost a dozen small kernels per trip. Measured on PPO CartPole
    (experiments/results/ab_threefry.json, env-steps/s and compile s): a plain 1-seed program ran
    169k / 4.3 s with the loop, 149k / 9.9 s straight-line, 177k / 3.7 s by size; 8 vmapped
    seeds 180k / 6.7 s, 197k / 4.9 s and 199k / 4.7 s. Same hash, the same bits either way.
    Uses a private jax module: if it moves, rlx keeps jax's default lowering. Only on jax 0.10,
    where it was measured: with jax 0.11.2 the same rule made XLA's compile of some vmapped
    programs run for minutes (a vmapped VecEnv reset: killed after 60 s, 0.9 s with jax's rule).
    """
    if jax.__version_info__ >= (0, 11):
        return
    try:
        import math

        from jax._src.interpreters import mlir
        from jax._src.random import threefry2x32 as threefry

        straight_line, loop = threefry._threefry2x32_lowering_rule, threefry._threefry2x32_cpu_lowering_rule

        def rule(ctx, *args, **params):
            lower = straight_line if math.prod(ctx.avals_out[0].shape) >= min_elements else loop
            return lower(ctx, *args, **params)

        mlir.register_lowering(threefry.threefry2x32_p, rule, platform="cpu")
    except (ImportError, AttributeError):
        pass


_threefry_lowering_by_size()


def evaluate(agent: Agent, policy, key, env_params=None, *, num_episodes: int = 8, max_steps: Optional[int] = None,
             deterministic: bool = True):
    """Mean return of ``num_episodes`` episodes run in parallel, one episode each.

    Runs ``max_steps`` steps (default: the env's episode limit); an env's first finished
    episode counts. Returns ``(mean_return, per_episode_returns [num_episodes])``.
    """
    env_params = agent.env_params if env_params is None else env_params
    max_steps = max_steps or envs.episode_limit(agent.env_params)
    vec = envs.VecEnv(agent.eval_env, num_episodes)
    key, k_reset = jax.random.split(key)
    obs, env_state = vec.reset(k_reset, env_params)
    act = jax.vmap(agent.act, in_axes=(None, 0, 0, None))

    def step(carry, key):
        obs, env_state, done_once, returns = carry
        k_act, k_env = jax.random.split(key)
        action = act(policy, obs, jax.random.split(k_act, num_episodes), deterministic)
        # Only each env's first episode counts, so none is reset (a reset compiles and runs for nothing).
        obs, env_state, reward, _, _, info = vec.step_without_reset(k_env, env_state, action, env_params)
        returns = jnp.where(done_once, returns, returns + reward)
        done_once = jnp.logical_or(done_once, info["episode_done"])
        return (obs, env_state, done_once, returns), None

    init = (obs, env_state, jnp.zeros(num_episodes, bool), jnp.zeros(num_episodes, jnp.float32))
    (_, _, _, returns), _ = jax.lax.scan(step, init, jax.random.split(key, max_steps))
    return returns.mean(), returns


def make_train(agent: Agent, num_iterations: Optional[int] = None, *, eval_every: Optional[int] = None,
               eval_episodes: int = 8, progress: Optional[Callable] = None):
    """Build ``train(key, hp, env_params=None) -> (state, metrics)``.

    Args:
      agent: any :class:`rlx.agent.Agent`.
      num_iterations: iterations to run (default: the agent's configured horizon).
      eval_every: iterations between deterministic evaluations (default: 10 evaluations per
        run); there is always one after the last iteration.
      eval_episodes: episodes per evaluation; 0 evaluates never, and no evaluation loop is
        compiled (for programs that only need the training: evaluation has its own key).
      progress: optional host function ``progress(iterations_done)``, called after every
        evaluation through ``jax.debug.callback``.
    Returns:
      ``train``. Its metrics hold every per-iteration metric of ``agent.update`` with a
      leading [num_iterations] axis, plus "eval/return" [num_evals] and "eval/iteration".
      It is :func:`make_chunks`' ``init`` followed by one ``advance`` over every iteration.
    """
    prog = make_chunks(agent, num_iterations, eval_every=eval_every, eval_episodes=eval_episodes, progress=progress)

    def train(key, hp, env_params=None):
        carry = prog.init(key, hp, env_params)
        carry, metrics = prog.advance(carry, hp, 0, prog.num_iterations)
        return carry["state"], prog.select_evals(metrics)

    return train


@dataclasses.dataclass(frozen=True)
class Chunks:
    """A run cut into pieces: ``init`` then ``advance`` over any consecutive iteration ranges.

    ``advance(carry, hp, start, length)`` runs iterations ``start .. start+length-1`` (``length``
    static, ``start`` a traced scalar: one compile per distinct length). The carry holds the agent
    state and the evaluation key: everything a run needs to continue, so it is what a checkpoint
    saves. Running ``advance`` over [0, n) in one call or in any number of pieces performs the same
    computations in the same order, so the results are bitwise equal.

    The per-iteration metrics of ``advance`` include "eval/return", NaN where no evaluation ran;
    ``select_evals`` turns a full [.., num_iterations] history into make_train's metrics.
    """

    init: Callable
    advance: Callable
    num_iterations: int
    eval_at: tuple

    def select_evals(self, metrics: dict) -> dict:
        idx = jnp.asarray(self.eval_at, jnp.int32) - 1  # empty with eval_episodes=0
        out = {k: v for k, v in metrics.items() if k != "eval/return"}
        rets = metrics["eval/return"]
        shape = rets.shape[:-1] + (len(self.eval_at),)
        if isinstance(rets, jax.Array):
            out["eval/return"] = jnp.take(rets, idx, axis=-1)
            out["eval/iteration"] = jnp.broadcast_to(jnp.asarray(self.eval_at, jnp.int32), shape)
        else:  # host arrays
            out["eval/return"] = np.asarray(rets)[..., np.asarray(self.eval_at, np.int32) - 1]
            out["eval/iteration"] = np.broadcast_to(np.asarray(self.eval_at, np.int32), shape)
        return out


def make_chunks(agent: Agent, num_iterations: Optional[int] = None, *, eval_every: Optional[int] = None,
                eval_episodes: int = 8, progress: Optional[Callable] = None) -> Chunks:
    """The run loop as ``init(key, hp, env_params=None) -> carry`` and ``advance`` (see :class:`Chunks`)."""
    n = agent.num_iterations if num_iterations is None else int(num_iterations)
    if n <= 0:
        raise ValueError(f"num_iterations must be positive, got {n}")
    k = max(1, n // 10) if eval_every is None else int(eval_every)
    if k <= 0:
        raise ValueError(f"eval_every must be a positive integer, got {eval_every}")
    if int(eval_episodes) < 0:
        raise ValueError(f"eval_episodes must be 0 (no evaluation) or a positive integer, got {eval_episodes}")
    evaluating = int(eval_episodes) > 0
    # 1-based iterations after which we evaluate
    eval_at = tuple(sorted({i for i in range(k, n + 1, k)} | {n})) if evaluating else ()
    is_eval = jnp.zeros(n + 1, bool).at[jnp.array(eval_at, jnp.int32)].set(True)

    def init(key, hp, env_params=None):
        key, k_init, k_eval = jax.random.split(key, 3)
        carry = {"state": agent.init(k_init, hp, env_params), "eval_key": k_eval, "env_params": env_params}
        # Strongly typed leaves (gymnax's env params are Python floats, weakly typed): a carry
        # restored from a checkpoint is strongly typed, and with the same types a resumed run
        # is the very program of a fresh one instead of a second compile.
        return envs.strongly_typed(carry)

    def advance(carry, hp, start, length: int):
        k_eval = carry["eval_key"]

        def iteration(state, i):
            state, metrics = agent.step(state, hp, i)  # i is the scan's counter: shared by every run

            # The predicate depends on the scan counter only, never on per-run data, so under
            # vmap this stays a real branch: evaluation costs nothing on other iterations.
            def run_eval(state):
                ret, _ = evaluate(agent, agent.policy(state), jax.random.split(k_eval, n)[i],
                                  getattr(state, "env_params", carry["env_params"]), num_episodes=eval_episodes)
                if progress is not None:
                    jax.debug.callback(progress, i + 1)
                return ret

            no_eval = lambda _: jnp.float32(jnp.nan)
            ret = jax.lax.cond(is_eval[i + 1], run_eval, no_eval, state) if evaluating else no_eval(state)
            return state, {**metrics, "eval/return": ret}

        state, metrics = jax.lax.scan(iteration, carry["state"], jnp.asarray(start, jnp.int32) + jnp.arange(length))
        return {**carry, "state": state}, metrics

    return Chunks(init, advance, n, eval_at)


@dataclasses.dataclass
class PopulationResult:
    state: object  # the agent state of every run, host numpy, leading [runs] axis
    metrics: dict  # make_train's metrics with a leading [runs] axis (host numpy)
    compile_s: float
    wall_s: float  # running time, compilation excluded
    resumed_from: int  # iteration the run continued from (0: a fresh start)
    devices: list


def run_population(agent: Agent, keys, hp, env_params=None, *, num_iterations: Optional[int] = None,
                   eval_every: Optional[int] = None, eval_episodes: int = 8, chunk_iterations: Optional[int] = None,
                   checkpointer=None, resume: bool = False, progress: Optional[Callable] = None, labels=None,
                   on_chunk: Optional[Callable] = None, guard: bool = True, mesh=None,
                   cache: Optional[dict] = None, checkpoint_every: Optional[int] = None) -> PopulationResult:
    """Train a batch of runs (leading axis of ``keys``, ``hp`` and ``env_params``) chunk by chunk.

    The runs axis is sharded over every device (``rlx.parallel.RunsMesh``). The host loop runs
    ``chunk_iterations`` iterations per jitted call, and between calls: checks every loss for
    NaN/inf (``rlx.logs.check_finite``), feeds ``progress(iterations_done)`` and
    ``on_chunk(metrics, start)``, and saves the whole carry with ``checkpointer`` (an
    ``rlx.checkpoint.Checkpointer``). With ``resume=True`` it continues from the checkpoint's
    latest iteration. Chunked, resumed or not, the results are bitwise equal to one call.
    ``checkpoint_every``: save at the first chunk boundary at least this many iterations after the
    previous save (default: every chunk), and always after the last iteration.

    ``cache``: pass the same dict to calls with the same agent, settings, mesh and batch size
    (e.g. the chunks of a sweep) to compile once.
    """
    import time
    from concurrent.futures import ThreadPoolExecutor

    from rlx.logs import check_finite
    from rlx.parallel import RunsMesh, vmap_runs

    cache = {} if cache is None else cache
    if "prog" not in cache:
        cache["prog"] = make_chunks(agent, num_iterations, eval_every=eval_every, eval_episodes=eval_episodes)
    prog = cache["prog"]
    n = prog.num_iterations
    K = n if not chunk_iterations else int(chunk_iterations)
    if K <= 0:
        raise ValueError(f"chunk_iterations must be a positive integer, got {chunk_iterations}")
    runs = int(np.shape(jax.tree.leaves(keys)[0])[0])
    mesh = mesh or RunsMesh(runs, parts=agent.parts)
    env_axis = None if env_params is None else 0
    if "advance" not in cache:
        cache["advance"] = mesh.jit(vmap_runs(prog.advance, mesh.padded, in_axes=(0, 0, None, None)), static_argnums=3)
    advance = cache["advance"]
    keys_s, hp_s = mesh.put(keys), mesh.put(hp)
    ep_s = None if env_params is None else mesh.put(env_params)
    # Compiled programs per input signature (a cache may see env_params given and not): the
    # init program, and one advance per chunk length.
    signature = (jax.tree.structure((keys_s, hp_s, ep_s)),
                 tuple((x.shape, str(x.dtype)) for x in jax.tree.leaves((keys_s, hp_s, ep_s))))
    programs = cache.setdefault("programs", {}).setdefault(signature, {"init": None, "advance": {}})
    compiled = programs["advance"]

    if resume and checkpointer is None:
        raise ValueError("resume=True needs a checkpointer")

    def advance_fn(length, carry_spec=None):
        if length not in compiled:
            spec = carry if carry_spec is None else carry_spec
            compiled[length] = advance.lower(spec, hp_s, mesh.replicate(np.int32(0)), length).compile()
        return compiled[length]

    t0 = time.perf_counter()
    if programs["init"] is None:
        init = mesh.jit(vmap_runs(prog.init, mesh.padded, in_axes=(0, 0, env_axis)))
        init_lowered = init.lower(keys_s, hp_s, ep_s)
        # The init program compiles on a helper thread while this one traces and compiles the
        # first chunk (from init's output shapes and shardings): XLA compiles with the GIL
        # released, and tracing and XLA's HLO passes use one core. The init is small but takes
        # 1.3-1.8 s to compile (tiny threefry hash loops, a Gaussian draw per layer). PPO CartPole,
        # 2 cores, experiments/results/ab_concurrent_init.json: 8 seeds 8.5 -> 7.2 s (faster in 4 of 4
        # rounds), 1 seed spread 7.3 -> 7.1 s (2 of 4: within the noise).
        with ThreadPoolExecutor(1) as pool:
            pending_init = pool.submit(init_lowered.compile)
            if not resume:
                advance_fn(min(K, n), init_lowered.out_info)
            programs["init"] = pending_init.result()
    carry = programs["init"](keys_s, hp_s, ep_s)
    start, history = 0, {}
    if resume:
        start, carry, history = checkpointer.restore(carry)
        history = {k: [v] for k, v in history.items()}
    elif checkpointer is not None:
        checkpointer.check_compatible()
    resumed_from = last_save = start

    advance_fn(min(K, n - start) if start < n else K)
    compile_s = time.perf_counter() - t0
    if progress is not None and start:
        progress(start)
    t0 = time.perf_counter()
    # Pipelined: chunk c+1 is dispatched before the host looks at chunk c (guard, logs, progress,
    # checkpoint), so the devices never wait for the host. A NaN found in chunk c still stops the
    # run there; the in-flight chunk is discarded.
    try:
        pending = None
        while start < n or pending is not None:
            nxt = None
            if start < n:
                length = min(K - start % K, n - start)
                nxt = (start, length) + tuple(advance_fn(length)(carry, hp_s, mesh.replicate(np.int32(start))))
                carry, start = nxt[2], start + length
            if pending is not None:
                p_start, p_len, p_carry, p_m = pending
                m = mesh.get(p_m)
                if guard:
                    check_finite(m, p_start, labels)
                for k, v in m.items():
                    history.setdefault(k, []).append(v)
                if on_chunk is not None:
                    on_chunk(m, p_start)
                if progress is not None:
                    progress(p_start + p_len)
                end = p_start + p_len
                if checkpointer is not None and (end == n or end - last_save >= (checkpoint_every or 1)):
                    checkpointer.save(end, p_carry, {k: np.concatenate(v, axis=1) for k, v in history.items()})
                    last_save = end
            pending = nxt
    finally:
        if checkpointer is not None:
            checkpointer.wait()  # never leave a save half-written, even on an error
    jax.block_until_ready(carry)
    wall_s = time.perf_counter() - t0
    metrics = prog.select_evals({k: np.concatenate(v, axis=1) for k, v in history.items()})
    return PopulationResult(mesh.get(carry["state"]), metrics, compile_s, wall_s, resumed_from, list(mesh.devices))

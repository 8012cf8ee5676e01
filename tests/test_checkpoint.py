"""Chunked runs, checkpoints and resume: bitwise equal to one uninterrupted run, with clear errors."""
import json
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import envs
from rlx.agents import ppo
from rlx.checkpoint import CheckpointError, Checkpointer
from rlx.run import run_population

SMALL = ["--num-envs", "4", "--num-steps", "32", "--hidden", "8,8", "--eval-every", "4", "--eval-episodes", "2",
         "--no-progress", "--seeds", "3"]


def tiny_agent(iterations=6):
    env, ep = envs.make("CartPole-v1")
    cfg = ppo.PPOConfig(total_timesteps=iterations * 4 * 32, num_envs=4, num_steps=32, hidden=(8, 8))
    return ppo.make(cfg, env, ep)


def population(agent, runs=6):
    # 6 runs of tiny_agent with test_sweep's evaluation settings: the programs of test_sweep's TINY
    # sweep and (in chunks of 3) of test_logging's CLI runs, which the tests' persistent compilation
    # cache serves to whichever runs second.
    hp = agent.default_hparams()
    hp = jax.tree.map(lambda x: jnp.stack([x] * runs), hp)
    hp = hp.replace(lr=jnp.array([1e-3, 2.5e-4, 5e-4, 2e-3, 1e-4, 7e-4][:runs], jnp.float32))
    return jax.random.split(jax.random.PRNGKey(3), runs), hp


def same(a, b):
    return all(jax.tree.leaves(jax.tree.map(lambda x, y: np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True),
                                            a, b)))


class Stop(Exception):
    """Raised from ``on_chunk``: the run stops as if killed between two chunks."""


def stop_then_resume(agent, keys, hp, directory, chunk, cache, **kw):
    """A run stopped after its first checkpoint (``chunk`` iterations), then resumed from it."""
    meta = {"test": "resume"}

    def stop_at_second_chunk(m, start):
        if start >= chunk:  # the first chunk's checkpoint is written; this chunk's is not
            raise Stop

    with pytest.raises(Stop):
        run_population(agent, keys, hp, chunk_iterations=chunk, checkpointer=Checkpointer(directory, meta),
                       on_chunk=stop_at_second_chunk, cache=cache, **kw)
    ck = Checkpointer(directory, meta)
    assert ck.latest_iteration() == chunk
    resumed = run_population(agent, keys, hp, chunk_iterations=chunk, checkpointer=ck, resume=True, cache=cache, **kw)
    assert resumed.resumed_from == chunk
    return resumed


def test_chunked_and_resumed_equal_one_call(tmp_path):
    agent = tiny_agent()
    keys, hp = population(agent)
    cache = {}  # one program per chunk length for all four runs
    whole = run_population(agent, keys, hp, eval_every=2, eval_episodes=2, cache=cache)
    # Chunks of 3: 3 + 3, the first ending between two evaluations (at 2 and 4).
    chunked = run_population(agent, keys, hp, eval_every=2, eval_episodes=2, chunk_iterations=3, cache=cache)
    assert same((whole.state, whole.metrics), (chunked.state, chunked.metrics))
    assert whole.metrics["eval/return"].shape == (6, 3) and whole.metrics["loss/policy"].shape == (6, 6)

    resumed = stop_then_resume(agent, keys, hp, tmp_path / "ck", 3, cache, eval_every=2, eval_episodes=2)
    assert same((whole.state, whole.metrics), (resumed.state, resumed.metrics))
    (programs,) = cache["programs"].values()  # one input signature: one init program for all four runs
    assert sorted(programs["advance"]) == [3, 6]  # the stopped and resumed runs reused the chunked run's program

    # A different run must not resume from it.
    with pytest.raises(CheckpointError, match="different run.*test"):
        Checkpointer(tmp_path / "ck", {"test": "other"}).restore(None)


def test_one_cache_serves_runs_with_and_without_env_params():
    """A cache keeps one set of programs per input signature: env params given are other inputs."""
    agent = tiny_agent(2)
    keys, hp = population(agent, runs=2)
    cache = {}
    default = run_population(agent, keys, hp, eval_every=2, eval_episodes=2, cache=cache)
    env_params = jax.tree.map(lambda x: np.stack([np.asarray(x)] * 2), agent.env_params)  # as rlx.sweep builds them
    given = run_population(agent, keys, hp, env_params, eval_every=2, eval_episodes=2, cache=cache)
    assert len(cache["programs"]) == 2
    assert same(default.state.params, given.state.params)  # the same env, so the same training


def assert_resume_is_bitwise(agent, key, directory):
    """Two runs of 12 iterations in chunks of 4: one uninterrupted, one stopped and resumed at 4."""
    keys = jax.random.split(key, 2)
    hp = jax.tree.map(lambda x: jnp.stack([x] * 2), agent.default_hparams())
    cache = {}  # the uninterrupted reference runs the same chunks: one program for all three runs
    whole = run_population(agent, keys, hp, eval_every=12, eval_episodes=1, chunk_iterations=4, cache=cache)
    resumed = stop_then_resume(agent, keys, hp, directory, 4, cache, eval_every=12, eval_episodes=1)
    assert same((whole.state, whole.metrics), (resumed.state, resumed.metrics))
    (programs,) = cache["programs"].values()
    assert len(programs["advance"]) == 1  # the resumed carry has a fresh carry's types


def test_sac_resumes_with_its_replay_buffer(tmp_path):
    """The checkpoint is the run loop's whole carry: SAC's replay buffer and optimiser states too."""
    from rlx.agents import sac

    env, ep = envs.make("Pendulum-v1")
    agent = sac.make(sac.SACConfig(total_timesteps=240, train_freq=20, hidden=(16, 16), batch_size=32,
                                   learning_starts=60, buffer_size=200), env, ep)  # updates from iteration 3; the buffer wraps
    assert_resume_is_bitwise(agent, jax.random.PRNGKey(1), tmp_path / "ck")


def test_offline_iql_resumes_bitwise(tmp_path, medium):
    from rlx.agents import iql

    ds, env, ep = medium
    agent = iql.make(iql.IQLConfig(total_steps=120, steps_per_iteration=10, hidden=(16, 16), batch_size=32), ds, env,
                     ep)
    assert_resume_is_bitwise(agent, jax.random.PRNGKey(2), tmp_path / "ck")


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    tree = {"w": jnp.arange(4.0), "key": jax.random.PRNGKey(0)}
    ck = Checkpointer(tmp_path / "ck", {"a": 1})
    ck.save(5, tree, {"loss": np.zeros((1, 5))})
    ck.wait()
    it, restored, hist = Checkpointer(tmp_path / "ck", {"a": 1}).restore(tree)
    assert it == 5 and same(tree, restored) and hist["loss"].shape == (1, 5)

    # Damage every array file of the saved state.
    state_dir = tmp_path / "ck" / "steps" / "5" / "state"
    damaged = 0
    for root, _, files in os.walk(state_dir):
        for f in files:
            p = os.path.join(root, f)
            if os.path.getsize(p) > 0:
                with open(p, "r+b") as fh:
                    fh.write(b"\xff" * min(64, os.path.getsize(p)))
                damaged += 1
    assert damaged
    with pytest.raises(CheckpointError, match="corrupt"):
        Checkpointer(tmp_path / "ck", {"a": 1}).restore(tree)

    (tmp_path / "ck" / "rlx_checkpoint.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt"):
        Checkpointer(tmp_path / "ck", {"a": 1}).restore(tree)

    with pytest.raises(CheckpointError, match="nothing to resume"):
        Checkpointer(tmp_path / "empty", {"a": 1}).restore(tree)


def _cli(args, **kw):
    return subprocess.Popen([sys.executable, "-m", "rlx.cli", "train"] + args, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


# The command runs 60 iterations; the kill lands after the first checkpoint (every 2 iterations).
# One agent is enough here: the CLI, the asynchronous saves and the restore are the same code for
# every agent, and the tests above show each family's carry (replay buffer, dataset) resumes.
COMMAND = ["ppo", "--steps", str(60 * 4 * 32)] + SMALL


@pytest.mark.timeout(600)
def test_kill_minus_9_then_resume_is_bitwise_equal(tmp_path):
    """A CLI run killed with SIGKILL resumes from its last complete checkpoint, bitwise."""
    # The reference runs the killed run's chunks of 2 and finishes first: one program, compiled
    # once and then read from the tests' persistent compilation cache by the other three processes.
    ref = _cli(COMMAND + ["--out", str(tmp_path / "ref"), "--chunk", "2"])
    ref_out, _ = ref.communicate(timeout=400)
    assert ref.returncode == 0, ref_out
    killed = _cli(COMMAND + ["--out", str(tmp_path / "run"), "--checkpoint-every", "2"])
    steps_dir = tmp_path / "run" / "checkpoint" / "steps"
    deadline = time.time() + 400
    while time.time() < deadline:
        done = [d for d in os.listdir(steps_dir) if d.isdigit()] if steps_dir.exists() else []
        if done or killed.poll() is not None:
            break
        time.sleep(0.02)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(30)
    assert killed.returncode == -signal.SIGKILL, killed.stdout.read()
    assert not (tmp_path / "run" / "summary.json").exists()
    at = max(int(d) for d in os.listdir(steps_dir) if d.isdigit())  # the last complete checkpoint
    assert 0 < at < 60, at

    # The wrong config is refused before anything runs.
    bad = _cli(COMMAND + ["--resume", str(tmp_path / "run"), "--lr", "1e-3"])
    out, _ = bad.communicate(timeout=300)
    assert bad.returncode != 0 and "different run" in out and "hparams" in out, out

    resumed = _cli(COMMAND + ["--resume", str(tmp_path / "run")])
    out, _ = resumed.communicate(timeout=400)
    assert resumed.returncode == 0, out
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["resumed_from_iteration"] == at
    a, b = np.load(tmp_path / "ref" / "final_state.npz"), np.load(tmp_path / "run" / "final_state.npz")
    assert sorted(a.files) == sorted(b.files) and any("params" in f for f in a.files)
    for f in a.files:
        assert np.array_equal(a[f], b[f]), f

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


def population(agent, runs=3):
    hp = agent.default_hparams()
    hp = jax.tree.map(lambda x: jnp.stack([x] * runs), hp)
    hp = hp.replace(lr=jnp.array([1e-3, 2.5e-4, 5e-4][:runs], jnp.float32))
    return jax.random.split(jax.random.PRNGKey(3), runs), hp


def same(a, b):
    return all(jax.tree.leaves(jax.tree.map(lambda x, y: np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True),
                                            a, b)))


def test_chunked_and_resumed_equal_one_call(tmp_path):
    agent = tiny_agent()
    keys, hp = population(agent)
    whole = run_population(agent, keys, hp, eval_every=2, eval_episodes=2)
    chunked = run_population(agent, keys, hp, eval_every=2, eval_episodes=2, chunk_iterations=4)  # 4 + 2
    assert same((whole.state, whole.metrics), (chunked.state, chunked.metrics))
    assert whole.metrics["eval/return"].shape == (3, 3) and whole.metrics["loss/policy"].shape == (3, 6)

    # Stop after the first chunk (as if killed), then resume from its checkpoint.
    meta = {"test": "resume"}

    class Stop(Exception):
        pass

    def stop_after_first(m, start):
        raise Stop

    with pytest.raises(Stop):
        run_population(agent, keys, hp, eval_every=2, eval_episodes=2, chunk_iterations=2,
                       checkpointer=Checkpointer(tmp_path / "ck", meta), on_chunk=lambda m, s: s >= 2 and stop_after_first(m, s))
    ck = Checkpointer(tmp_path / "ck", meta)
    assert ck.latest_iteration() == 2
    resumed = run_population(agent, keys, hp, eval_every=2, eval_episodes=2, chunk_iterations=2, checkpointer=ck,
                             resume=True)
    assert resumed.resumed_from == 2
    assert same((whole.state, whole.metrics), (resumed.state, resumed.metrics))

    # A different run must not resume from it.
    with pytest.raises(CheckpointError, match="different run.*test"):
        Checkpointer(tmp_path / "ck", {"test": "other"}).restore(None)


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


@pytest.fixture(scope="module")
def medium_file(medium, tmp_path_factory):
    from rlx import data

    path = str(tmp_path_factory.mktemp("data") / "medium.npz")
    data.save_npz(medium[0], path)
    return path


# Each command runs 60 iterations; the kill lands after the first checkpoint (every 2 iterations).
COMMANDS = {
    "ppo": lambda _: ["ppo", "--steps", str(60 * 4 * 32)] + SMALL,
    "sac": lambda _: ["sac", "--env", "Pendulum-v1", "--steps", "1200", "--train-freq", "20", "--hidden", "16,16",
                      "--batch-size", "32", "--learning-starts", "100", "--buffer-size", "2000", "--eval-every", "30",
                      "--eval-episodes", "1", "--no-progress", "--seeds", "2"],
    "iql": lambda path: ["iql", "--dataset", path, "--steps", "600", "--steps-per-iteration", "10", "--hidden",
                         "16,16", "--batch-size", "32", "--eval-every", "30", "--eval-episodes", "1", "--no-progress",
                         "--seeds", "2"],
}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("agent", sorted(COMMANDS))
def test_kill_minus_9_then_resume_is_bitwise_equal(tmp_path, agent, request):
    """Online (PPO, SAC with its replay buffer) and offline (IQL): the checkpoint is the run loop's
    whole carry, so a resumed run continues exactly where the killed one stopped."""
    command = COMMANDS[agent](request.getfixturevalue("medium_file") if agent == "iql" else None)
    ref = _cli(command + ["--out", str(tmp_path / "ref")])
    killed = _cli(command + ["--out", str(tmp_path / "run"), "--checkpoint-every", "2"])
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
    bad = _cli(command + ["--resume", str(tmp_path / "run"), "--lr" if agent != "sac" else "--critic-lr", "1e-3"])
    out, _ = bad.communicate(timeout=300)
    assert bad.returncode != 0 and "different run" in out and "hparams" in out, out

    resumed = _cli(command + ["--resume", str(tmp_path / "run")])
    out, _ = resumed.communicate(timeout=400)
    assert resumed.returncode == 0, out
    ref_out, _ = ref.communicate(timeout=400)
    assert ref.returncode == 0, ref_out
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["resumed_from_iteration"] == at
    a, b = np.load(tmp_path / "ref" / "final_state.npz"), np.load(tmp_path / "run" / "final_state.npz")
    assert sorted(a.files) == sorted(b.files) and any("params" in f for f in a.files)
    for f in a.files:
        assert np.array_equal(a[f], b[f]), f

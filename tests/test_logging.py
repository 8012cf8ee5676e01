"""NaN/inf guard, and metrics written to CSV, JSON and TensorBoard."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import cli, envs, objectives
from rlx.agents import ppo
from rlx.logs import NonFiniteError, check_finite
from rlx.run import run_population


def nan_after_half(batch, epsilon=0.2):
    """ppo_clip until half of training is done, then NaN."""
    loss = objectives.ppo_clip(batch, epsilon=epsilon)
    return jnp.where(batch.progress >= 0.5, jnp.nan, loss)


def test_guard_names_iteration_and_term():
    env, ep = envs.make("CartPole-v1")
    agent = ppo.make(ppo.PPOConfig(total_timesteps=8 * 4 * 32, num_envs=4, num_steps=32, hidden=(8, 8)), env, ep,
                     objective=nan_after_half)
    hp = jax.tree.map(lambda x: jnp.stack([x] * 2), agent.default_hparams())
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    seen = []
    with pytest.raises(NonFiniteError) as e:
        run_population(agent, keys, hp, eval_every=4, eval_episodes=2, chunk_iterations=2,
                       labels=[{"seed": 0}, {"seed": 1}], on_chunk=lambda m, start: seen.append(start))
    # progress = iteration_index / 8 >= 0.5 from the 5th iteration (index 4) on.
    assert e.value.iteration == 5 and e.value.term == "loss/policy" and e.value.runs == [0, 1]
    assert "non-finite loss/policy at iteration 5" in str(e.value) and "seed=0" in str(e.value)
    assert seen == [0, 2]  # the chunk holding iteration 5 (and the one in flight after it) never passed on


def test_check_finite_picks_the_earliest_iteration():
    m = {"loss/value": np.ones((3, 4)), "loss/policy": np.ones((3, 4)), "episode_return": np.full((3, 4), np.nan)}
    check_finite(m, 10)  # NaN returns (no episode finished) are not losses
    m["loss/value"][2, 3] = np.inf
    m["loss/policy"][1, 2] = np.nan
    with pytest.raises(NonFiniteError, match="non-finite loss/policy at iteration 13 in 1 run"):
        check_finite(m, 10)


# 6 seeds of test_checkpoint's tiny PPO in chunks of 3: its compiled programs, which the tests'
# persistent compilation cache serves to whichever runs second.
RUN = ["train", "ppo", "--seeds", "6", "--steps", str(6 * 4 * 32), "--num-envs", "4", "--num-steps", "32",
       "--hidden", "8,8", "--eval-every", "2", "--eval-episodes", "2", "--no-progress", "--chunk", "3"]


def test_train_writes_csv_json_tensorboard(tmp_path):
    out = tmp_path / "run"
    cli.main(RUN + ["--tensorboard", "--out", str(out)])
    data = json.loads((out / "metrics.json").read_text())
    assert len(data["labels"]) == 6 and len(data["metrics"]["loss/policy"][0]) == 6
    assert (out / "metrics.csv").read_text().count("\n") == 1 + 6 * 6
    runs = sorted(os.listdir(out / "tb"))
    assert runs == [f"seed={i}" for i in range(6)]
    tags = read_scalars(out / "tb" / "seed=0")
    assert len(tags["loss/policy"]) == 6 and len(tags["eval/return"]) == 3
    assert [step for step, _ in tags["eval/return"]] == [2 * 128, 4 * 128, 6 * 128]


def test_log_every_writes_window_means_and_keeps_evaluations(tmp_path):
    from rlx import report

    # Hand-computed: iterations 1..10, windows of 4 end at 4, 8 and 10 (the tail window is shorter).
    m = {"loss": np.arange(1.0, 11.0)[None], "episode_return": np.array([[np.nan] * 4 + [3.0] + [np.nan] * 5]),
         "eval/return": np.array([[5.0, 7.0]]), "eval/iteration": np.array([[5, 10]])}
    means, last = report.window_means(m, 4)
    np.testing.assert_allclose(means["loss"], [[2.5, 6.5, 9.5]])
    np.testing.assert_allclose(means["episode_return"], [[np.nan, 3.0, np.nan]])  # a window with no episode is NaN
    assert last.tolist() == [4, 8, 10]
    report.write_metrics_csv(tmp_path / "m.csv", m, [{"seed": 0}], 2, every=4)
    rows = (tmp_path / "m.csv").read_text().splitlines()
    assert rows[1:] == ["0,4,8,,2.5,", "0,8,16,3,6.5,5", "0,10,20,,9.5,7"]
    assert report.log_every(1_000_000) == 1000 and report.log_every(800) == 1

    out = tmp_path / "run"
    # The run of test_train_writes_csv_json_tensorboard: only what is written differs. Windows of 4
    # over 6 iterations end at 4 and 6; all 3 evaluations are kept.
    cli.main(RUN + ["--log-every", "4", "--out", str(out)])
    data = json.loads((out / "metrics.json").read_text())
    assert data["every"] == 4 and data["iteration"] == [4, 6] and len(data["metrics"]["loss/policy"][0]) == 2
    assert len(data["metrics"]["eval/return"][0]) == 3


def read_scalars(directory):
    """Scalars of tensorboardX event files (TFRecord framing: length, crc, event proto, crc)."""
    import struct

    from tensorboardX.proto import event_pb2

    tags = {}
    for name in os.listdir(directory):
        data = open(os.path.join(directory, name), "rb").read()
        pos = 0
        while pos < len(data):
            (n,) = struct.unpack("<Q", data[pos:pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + n])
            pos += 12 + n + 4
            for v in event.summary.value:
                tags.setdefault(v.tag, []).append((event.step, v.simple_value))
    return tags


def test_learning_curve_plots_runs_that_finish_no_episode_early_without_warnings(tmp_path):
    import warnings

    from rlx.report import plot_learning_curve

    for iters in (10, 1000):  # 1000: the curve is also smoothed over windows of 10 iterations
        ret = np.full((3, iters), np.nan)
        ret[:, iters // 4:] = np.arange(iters - iters // 4)  # no run finished an episode in the first quarter
        metrics = {"episode_return": ret, "eval/iteration": np.tile([iters // 2, iters], (3, 1)),
                   "eval/return": np.ones((3, 2))}
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            plot_learning_curve(str(tmp_path / "curve.png"), metrics, 128, "title")
        assert (tmp_path / "curve.png").stat().st_size > 10_000


def test_progress_bar_shows_the_furthest_run_and_a_rate_only_once_it_has_one():
    import time

    from rlx.progress import ProgressBar

    bar = ProgressBar(10, steps_per_iteration=512, runs=4, desc="t")
    bar.callback(np.array([1, 1]))
    assert bar.done == 1 and "env-steps/s" not in str(bar.bar.postfix or "")
    time.sleep(0.6)  # past tqdm's mininterval, so the update measures a rate
    bar.callback(np.array([3, 5]))  # a batch from vmap: the furthest run counts
    assert bar.done == 5
    rate = float(str(bar.bar.postfix).split()[0].replace(",", ""))
    assert rate > 0 and str(bar.bar.postfix).endswith("env-steps/s")
    bar.close()
    assert bar.bar.n == 10

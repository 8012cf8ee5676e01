import csv
import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from rlx import cli
from rlx.agents import ppo

SMALL = ["--steps", "4096", "--num-envs", "4", "--num-steps", "64", "--hidden", "16,16", "--eval-every", "4",
         "--eval-episodes", "2", "--no-progress"]


def test_train_writes_summary_csv_and_plot(tmp_path, capsys):
    out = tmp_path / "run"
    # 8 runs of ppo_clip: the program of test_comma_list_makes_a_sweep's 2 × 2 grid × 2 seeds, which
    # the tests' persistent compilation cache then serves to whichever runs second.
    cli.main(["train", "ppo", "--env", "CartPole-v1", "--seeds", "8", "--objective", "ppo_clip", "--out", str(out)]
             + SMALL)
    summary = json.loads((out / "summary.json").read_text())
    for key in ("agent", "env", "objective", "seeds", "env_steps", "wall_s", "steps_per_s", "final_return",
                "final_return_median"):
        assert key in summary, key
    assert summary["agent"] == "ppo" and summary["objective"] == "ppo_clip" and summary["seeds"] == 8
    assert len(summary["final_return"]) == 8 and summary["env_steps"] == 4096
    assert summary["config"]["hidden"] == [16, 16] and summary["config"]["num_steps"] == 64
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert len(rows) == 8 * 16 and {"seed", "iteration", "env_steps", "loss/policy", "eval_return"} <= set(rows[0])
    assert (out / "learning_curve.png").stat().st_size > 10_000
    printed = capsys.readouterr().out
    assert "final_return" in printed and "median final return" in printed


def test_default_chunk_divides_the_run_where_it_can():
    # Every chunk length is a compiled program. CartPole at 500k steps: 976 iterations = 16·61.
    assert cli.default_chunk(976) == 61  # not 48 (976 // 20), whose last chunk would be 16 long
    assert cli.default_chunk(977) == 48  # prime: no divisor near 48, so 20 chunks of 48 and one of 17
    assert cli.default_chunk(1000) == 50 and cli.default_chunk(16) == 1
    assert cli.default_chunk(976, checkpoint_every=50) == 48  # 61 would save less often than asked
    assert cli.default_chunk(976, checkpoint_every=8) == 8  # 8 divides 976


def test_comma_list_makes_a_sweep(tmp_path):
    out = tmp_path / "sweep"
    cli.main(["train", "ppo", "--seeds", "2", "--lr", "1e-4,1e-3", "--objective-param", "epsilon=0.1,0.3",
              "--out", str(out)] + SMALL)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["runs"] == 8 and sorted(summary["sweep_axes"]) == ["lr", "objective.epsilon"]
    settings = {(r["lr"], r["objective.epsilon"], r["seed"]) for r in summary["table"]}
    assert len(settings) == 8


def test_help_lists_every_field_with_its_default():
    parser = cli.build_train_parser("ppo", ppo)
    text = " ".join(parser.format_help().split())  # undo line wrapping
    for f in dataclasses.fields(ppo.PPOConfig):
        assert "--" + f.name.replace("_", "-") in text, f.name
    for f in dataclasses.fields(ppo.PPOHparams):
        if f.name != "objective":
            assert "--" + f.name.replace("_", "-") in text, f.name
    assert "(default: 128)" in text and "(default: 0.00025)" in text and "(default: (64, 64))" in text


@pytest.mark.parametrize("argv,match", [
    (["train", "dqn"], "unknown agent 'dqn'; choose one of: ppo"),
    (["train", "ppo", "--env", "CartPol-v1"], "unknown env id 'CartPol-v1'"),
    (["train", "ppo", "--objective", "ppo"], "unknown objective 'ppo'; choose one of"),
    (["train", "ppo", "--num-minibatches", "5"], "num_minibatches=5"),
    (["train", "ppo", "--objective-param", "clip=0.1"], "epsilon"),
    (["train", "ppo", "--env", "Pendulum-v1", "--distribution", "categorical"], "discrete-only"),
    (["sweeep"], "unknown command"),
    (["train", "sac", "--env", "Pendulum-v1", "--objective", "ppo_clip"], "unknown SAC actor objective 'ppo_clip'"),
    (["train", "td3", "--env", "Pendulum-v1", "--objective", "mdpo"], "TD3 has one actor objective"),
    (["train", "ppo", "--objective", "sac"], "sac"),
    (["train", "ppo", "--eval-episodes", "0"], "--eval-episodes must be a positive integer, got 0"),
])
def test_bad_input_is_a_clear_error(argv, match):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert match in str(e.value)


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "rlx.cli", "train", "ppo", "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "--update-epochs" in out.stdout


def test_offline_train_reports_normalized_scores(tmp_path, medium):
    from rlx import data

    ds, _, _ = medium
    path = str(tmp_path / "medium.npz")
    data.save_npz(ds, path)
    out = tmp_path / "iql"
    cli.main(["train", "iql", "--dataset", path, "--steps", "40", "--steps-per-iteration", "20", "--seeds", "2",
              "--hidden", "16,16", "--eval-episodes", "2", "--value-param", "tau=0.7,0.9", "--out", str(out)])
    summary = json.loads((out / "summary.json").read_text())
    for key in ("normalized_score", "normalized_score_median", "final_return", "dataset_normalized_score"):
        assert key in summary, key
    assert len(summary["normalized_score"]) == 4 and summary["sweep_axes"] == ["value.tau"]
    assert summary["env"] == "Pendulum-v1" and (out / "learning_curve.png").exists()


def test_offline_bad_input(tmp_path):
    with pytest.raises(SystemExit, match="no such file"):
        cli.main(["train", "iql", "--dataset", str(tmp_path / "missing.npz")])


def test_data_collect_is_deterministic(tmp_path):
    from rlx import data

    paths = [str(tmp_path / f"r{i}.npz") for i in range(2)]
    for p in paths:
        cli.main(["data", "collect", "--env", "Pendulum-v1", "--quality", "random", "--steps", "2000", "--out", p])
    a, b = data.load(paths[0]), data.load(paths[1])
    assert len(a) == 2000 and a.metadata.env_id == "Pendulum-v1" and a.metadata.ref_random_return < -500
    for k in data.FIELDS:
        np.testing.assert_array_equal(np.asarray(getattr(a, k)), np.asarray(getattr(b, k)))


def test_cli_keeps_the_compilation_cache_jax_already_has(monkeypatch, tmp_path):
    import jax

    before = (jax.config.jax_compilation_cache_dir, jax.config.jax_persistent_cache_min_compile_time_secs)
    assert before[0]  # tests/conftest.py gives jax the tests' cache
    monkeypatch.delenv("RLX_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    try:
        cli._use_compilation_cache()  # what `rlx ...` does first
        assert jax.config.jax_compilation_cache_dir == before[0]
        monkeypatch.setenv("RLX_CACHE_DIR", str(tmp_path / "mine"))  # an explicit choice wins
        cli._use_compilation_cache()
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "mine")
        monkeypatch.delenv("RLX_CACHE_DIR")
        jax.config.update("jax_compilation_cache_dir", None)  # jax has none: rlx's default
        cli._use_compilation_cache()
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / ".cache" / "rlx" / "xla")
    finally:
        jax.config.update("jax_compilation_cache_dir", before[0])
        jax.config.update("jax_persistent_cache_min_compile_time_secs", before[1])

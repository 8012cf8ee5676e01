"""Sweeps: config validation, chunking, and sharding over 4 forced devices and over 2 processes."""
import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from rlx import cli, sweep
from rlx.config import ConfigError

TINY = {"agent": "ppo", "env": "CartPole-v1", "seeds": 2, "eval_every": 2, "eval_episodes": 2,
        "config": {"total_timesteps": 6 * 4 * 32, "num_envs": 4, "num_steps": 32, "hidden": [8, 8]},
        "hparams": {"lr": [1e-3, 2.5e-4, 5e-3]}}

WORKER = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    nproc = int(os.environ.get("RLX_NPROC", "1"))
    if nproc > 1:
        import jax
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(os.environ["RLX_COORD"], num_processes=nproc,
                                   process_id=int(os.environ["RLX_PID"]))
    import jax
    from rlx import sweep
    spec = sweep.from_dict(json.loads(os.environ["RLX_SPEC"]))
    res = sweep.run(spec, progress=False, verbose=False)
    if jax.process_index() == 0:
        flat = {f"{g}/{k}": np.asarray(v) for g, m in res["metrics"].items() for k, v in m.items()}
        np.savez(sys.argv[1], **flat)
        print(json.dumps({"devices": len(jax.devices()), "processes": jax.process_count(),
                          "used": res["groups"][0]["devices"]}))
""")


def flat_metrics(res):
    return {f"{g}/{k}": np.asarray(v) for g, m in res["metrics"].items() for k, v in m.items()}


def assert_same(a, b):
    assert sorted(a) == sorted(b)
    for k in a:
        assert np.array_equal(a[k], b[k], equal_nan=True), k


def assert_close(a, b):
    """Sharding changes each device's batch size, so XLA may vectorise differently: equal to float tolerance
    (DESIGN.md: run i of a batch equals run i elsewhere to float tolerance)."""
    assert sorted(a) == sorted(b)
    for k in a:
        if k.endswith("eval/return") or k.endswith("episode_return"):
            # returns are sums of integer rewards: a flipped action shows at once; compare loosely
            np.testing.assert_allclose(a[k], b[k], rtol=0.05, atol=1.0, equal_nan=True, err_msg=k)
        else:
            np.testing.assert_allclose(a[k], b[k], rtol=2e-3, atol=1e-5, equal_nan=True, err_msg=k)


@pytest.mark.parametrize("change,match", [
    ({"agnet": "ppo"}, "unknown key 'agnet'"),
    ({"seeds": "4"}, "seeds must be an integer"),
    ({"seeds": 0}, "seeds=0 is out of range"),
    ({"mode": "bayes"}, "mode='bayes'; choose one of: grid, random, list"),
    ({"hparams": {"lr": [1e-3, -1.0]}}, "lr=-1.0 is out of range"),
    ({"hparams": {"gamma": 1.5}}, "gamma=1.5 is out of range"),
    ({"hparams": {"learning_rate": 1e-3}}, "[hparams] has no key 'learning_rate'; accepted: "),
    ({"config": {"num_envs": 2.5}}, "config.num_envs must be an integer"),
    ({"config": {"hidden": [64, -1]}}, "config.hidden must be a list of positive layer widths"),
    ({"objective_params": {"clip": 0.1}}, "has no key 'clip'; accepted: epsilon"),
    ({"env_params": {"gravty": 9.8}}, "has no key 'gravty'"),
    ({"mode": "random"}, "needs num_samples"),
    ({"agent": "dqn"}, "agent='dqn'; choose one of"),
    ({"env": "CartPol-v1"}, "unknown env id"),
])
def test_config_errors_name_the_key(change, match):
    with pytest.raises(ConfigError) as e:
        sweep.from_dict({**TINY, **change})
    assert match in str(e.value)


def test_toml_file_errors_and_examples(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('agent = "ppo"\nseeds = 2\n[hparams]\nlr = "fast"\n')
    with pytest.raises(SystemExit, match=r"bad.toml: lr must be a number, got str 'fast'"):
        cli.main(["sweep", str(bad)])
    here = os.path.join(os.path.dirname(__file__), "..", "experiments", "configs")
    names = [f for f in os.listdir(here) if f.endswith(".toml")]
    assert names
    for f in names:
        spec = sweep.load(os.path.join(here, f))
        assert spec.runs


def test_random_and_list_modes():
    spec = sweep.from_dict({**TINY, "mode": "random", "num_samples": 5,
                            "hparams": {"lr": {"log_uniform": [1e-4, 1e-2]}, "gamma": {"choice": [0.9, 0.99]}}})
    assert len(spec.runs) == 10 and all(1e-4 <= s["lr"] <= 1e-2 and s["gamma"] in (0.9, 0.99) for s in spec.settings)
    again = sweep.from_dict({**TINY, "mode": "random", "num_samples": 5,
                             "hparams": {"lr": {"log_uniform": [1e-4, 1e-2]}, "gamma": {"choice": [0.9, 0.99]}}})
    assert again.settings == spec.settings
    spec = sweep.from_dict({**TINY, "mode": "list", "hparams": {},
                            "runs": [{"lr": 1e-3}, {"lr": 3e-4, "objective.epsilon": 0.3}]})
    assert spec.settings == [{"lr": 1e-3}, {"lr": 3e-4, "objective.epsilon": 0.3}]


def test_sweep_chunked_equals_unchunked_and_writes_table(tmp_path):
    spec = sweep.from_dict({**TINY, "hparams": {"lr": [1e-3, 5e-3]},
                            "objective_params": {"epsilon": [0.1, 0.3]}})  # 2 × 2 grid × 2 seeds
    whole = sweep.run(spec, str(tmp_path / "whole"), progress=False, verbose=False)
    # 8 runs in chunks of 6: 6, then 2 padded to 6. Each chunk is the program of TINY's 6 runs (the
    # `unsharded` fixture below), which the tests' persistent compilation cache then serves.
    spec.max_parallel = 6
    chunked = sweep.run(spec, None, progress=False, verbose=False)
    assert_same(flat_metrics(whole), flat_metrics(chunked))
    table = json.loads((tmp_path / "whole" / "sweep.json").read_text())["table"]
    assert len(table) == 8 and {"lr", "objective.epsilon", "seed", "final_return", "best_return"} <= set(table[0])
    assert (tmp_path / "whole" / "sweep.csv").read_text().count("\n") == 9
    assert (tmp_path / "whole" / "heatmap.png").stat().st_size > 5000
    assert (tmp_path / "whole" / "curves.png").stat().st_size > 5000


def _run_workers(tmp_path, spec, nproc, env_extra):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "RLX_SPEC": json.dumps(spec), "RLX_NPROC": str(nproc), "JAX_PLATFORMS": "cpu", **env_extra}
    if nproc > 1:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env["RLX_COORD"] = f"127.0.0.1:{port}"
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path / "out.npz")],
                              env={**env, "RLX_PID": str(i)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for i in range(nproc)]
    outs = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=300)
            outs.append(out)
            assert p.returncode == 0, out[-3000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    info = json.loads(outs[0].strip().splitlines()[-1])
    return info, dict(np.load(tmp_path / "out.npz"))


@pytest.fixture(scope="module")
def unsharded():
    """TINY run in this process on one device: what the sharded runs must reproduce."""
    return flat_metrics(sweep.run(sweep.from_dict(TINY), progress=False, verbose=False))


@pytest.mark.timeout(400)
def test_sharded_over_4_forced_devices_equals_unsharded(tmp_path, unsharded):
    info, sharded = _run_workers(tmp_path, TINY, 1, {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"})
    assert info["devices"] == 4 and len(info["used"]) == 4  # 6 runs padded to 8, 2 per device
    assert_close(sharded, unsharded)


@pytest.mark.timeout(400)
def test_two_processes_with_jax_distributed_equal_one(tmp_path, unsharded):
    info, distributed = _run_workers(tmp_path, TINY, 2, {"XLA_FLAGS": ""})
    assert info["processes"] == 2 and info["devices"] == 2 and len(info["used"]) == 2
    assert_close(distributed, unsharded)


def test_cli_sweep_command(tmp_path, capsys):
    cfg = tmp_path / "tiny.toml"
    # TINY as a file: the program of the `unsharded` fixture, from the persistent compilation cache.
    cfg.write_text(textwrap.dedent("""
        agent = "ppo"
        env = "CartPole-v1"
        seeds = 2
        eval_every = 2
        eval_episodes = 2
        [config]
        total_timesteps = 768
        num_envs = 4
        num_steps = 32
        hidden = [8, 8]
        [hparams]
        lr = [1e-3, 2.5e-4, 5e-3]
    """))
    cli.main(["sweep", str(cfg), "--out", str(tmp_path / "out"), "--no-progress"])
    printed = capsys.readouterr().out
    assert "final_return" in printed and "best_return" in printed and "sweep.csv" in printed
    rows = (tmp_path / "out" / "sweep.csv").read_text().splitlines()
    assert rows[0].startswith("lr,seed,final_return,best_return") and len(rows) == 7
    assert (tmp_path / "out" / "curves.png").exists() and not (tmp_path / "out" / "heatmap.png").exists()

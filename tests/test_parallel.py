"""One run spread over several devices (rlx.parallel.spread) gives the numbers of the plain program."""
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import parallel


def test_spread_outside_a_parts_axis_is_fn_of_every_name():
    calls = []

    def fn(names):
        calls.append(names)
        return {n: jnp.float32(i) for i, n in enumerate(names)}

    out = jax.jit(lambda: parallel.spread(fn, ("a", "b")))()
    assert calls == [("a", "b")] and float(out["a"]) == 0.0 and float(out["b"]) == 1.0


WORKER = r'''
import json, sys
import jax, jax.numpy as jnp, numpy as np
from rlx import envs, parallel
from rlx.agents import ppo
from rlx.run import make_train, run_population

assert len(jax.devices()) == 2
out = {}

# spread itself: each part computed on its own device, every device gets every result.
def fn(names):
    return {n: {"x": jnp.full((3,), 10.0 * (k + 1)) + jax.lax.axis_index(parallel.PARTS),
                "flag": jnp.array(n == "b"), "count": jnp.int32(k + 5)}
            for k, n in ((("a", "b").index(n), n) for n in names)}
mesh = parallel.RunsMesh(1, parts=2)
res = mesh.jit(lambda: parallel.spread(fn, ("a", "b")))()
out["spread"] = {n: [np.asarray(res[n]["x"]).tolist(), bool(res[n]["flag"]), int(res[n]["count"])] for n in res}

def compare(agent, iterations):
    hp = agent.default_hparams()
    keys = jax.random.split(jax.random.PRNGKey(7), 1)
    hp1 = jax.tree.map(lambda x: jnp.asarray(x)[None], hp)
    spread = [run_population(agent, keys, hp1, eval_every=iterations, eval_episodes=2) for _ in range(2)]
    plain, _ = jax.jit(make_train(agent, eval_every=iterations, eval_episodes=2))(keys[0], hp)
    a = [np.asarray(x)[0] for x in jax.tree.leaves(spread[0].state.params)]
    b = [np.asarray(x)[0] for x in jax.tree.leaves(spread[1].state.params)]
    c = [np.asarray(x) for x in jax.tree.leaves(plain.params)]
    return {"devices": len(spread[0].devices), "bitwise_repeat": all(np.array_equal(x, y) for x, y in zip(a, b)),
            "max_gap": max(float(np.max(np.abs(x - z))) for x, z in zip(a, c)),
            "max_scale": max(float(np.max(np.abs(z))) for z in c)}

env, ep = envs.make("CartPole-v1")
agent = ppo.make(ppo.PPOConfig(total_timesteps=6 * 4 * 32, num_envs=4, num_steps=32, hidden=(8, 8)), env, ep)
out["ppo"] = compare(agent, agent.num_iterations)
print(json.dumps(out))
'''


@pytest.fixture(scope="module")
def spread_results(tmp_path_factory):
    script = tmp_path_factory.mktemp("spread") / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    p = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=500)
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.mark.timeout(600)
def test_spread_hands_every_part_to_every_device(spread_results):
    # Part a ran on device 0 (axis index 0 added), part b on device 1; dtypes survive the exchange.
    assert spread_results["spread"] == {"a": [[10.0] * 3, False, 5], "b": [[21.0] * 3, True, 6]}


@pytest.mark.timeout(600)
def test_one_ppo_run_spread_over_two_devices_equals_the_plain_program(spread_results):
    r = spread_results["ppo"]
    assert r["devices"] == 2 and r["bitwise_repeat"]
    # Same computations, differently fused: float rounding only (a wrong exchange moves weights by ~1e-2).
    assert r["max_gap"] <= 1e-5 * max(1.0, r["max_scale"]), r


@pytest.fixture
def before_jax_starts(monkeypatch):
    """compile_faster as if jax had not initialised its backends yet, on a CPU-only install."""
    import importlib.util

    monkeypatch.setattr(parallel, "_backends_initialised", lambda: False)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("jax_plugins", "libtpu") else real_find_spec(name, *a))
    return monkeypatch


def test_compile_faster_adds_level_1_to_the_callers_flags(before_jax_starts):
    before_jax_starts.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    assert parallel.compile_faster() is True
    assert os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=2 --xla_backend_optimization_level=1"


def test_compile_faster_leaves_a_level_the_user_chose(before_jax_starts):
    before_jax_starts.setenv("XLA_FLAGS", "--xla_backend_optimization_level=3")
    assert parallel.compile_faster() is False
    assert os.environ["XLA_FLAGS"] == "--xla_backend_optimization_level=3"


def test_compile_faster_leaves_accelerator_installs_alone(before_jax_starts):
    import importlib.util

    before_jax_starts.delenv("XLA_FLAGS", raising=False)
    before_jax_starts.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "jax_plugins" else None)
    assert parallel.compile_faster() is False
    assert "XLA_FLAGS" not in os.environ


def test_compile_faster_changes_nothing_once_jax_runs(monkeypatch):
    jax.devices()  # backends up, as in this test process
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    assert parallel.compile_faster() is False
    assert "XLA_FLAGS" not in os.environ

"""Tests for rlx.meta (ES meta-training) and rlx.objectives.export (learned objectives on disk)."""
import dataclasses
import functools
import json
import os
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rlx import meta
from rlx import objectives as obj

# --------------------------------------------------------------------------------------
# Toy inner problems: the ES machinery (ask, antithetic sampling, rank shaping, the sign
# convention, normalisation, logs, checkpoints) without compiling PPO.
# --------------------------------------------------------------------------------------


def _flat(params):
    return jnp.concatenate([params["w1"].reshape(params["w1"].shape[0], -1),
                            params["w2"].reshape(params["w2"].shape[0], -1)], axis=1)  # [P, D]


def linear_inner(cfg, lo=(0.0, -10.0), hi=(1.0, 10.0)):
    """Raw 'return' of task t is c_t · θ: linear in the evolved parameters.

    Why improvement is certain: with antithetic pairs θ ± σz and any rank shaping that is
    monotone in fitness, each pair contributes (s₊ − s₋)·z to Open_ES's gradient estimate
    with sign(s₊ − s₋) = sign(c·z), so c·ĝ = Σ |s₊ − s₋|·|c·z| / (Pσ) > 0 and an SGD step
    on the mean strictly increases c·m. The population's mean fitness is exactly c·m
    (antithetic pairs average to m). Passing +fitness to evosax (which minimises) would
    make both go down, so the test can fail.
    """
    dims = meta.initial_params(cfg)
    D = dims["w1"].size + dims["w2"].size
    c = jax.random.normal(jax.random.PRNGKey(42), (2, D))
    c = c.at[1].multiply(3.0)

    def fn(seed_keys, params):
        x = _flat(params)  # [P, D]
        raw = x @ c.T  # [P, T]
        return jnp.broadcast_to(raw[:, None, :], (x.shape[0], seed_keys.shape[0], 2))

    inner = meta.Inner(fn=jax.jit(fn), tasks=["toyA", "toyB"], env_steps=0, lo=np.array(lo, np.float32),
                       hi=np.array(hi, np.float32))
    return inner, c


def noisy_inner(cfg):
    """Nonlinear, seed-dependent toy: resuming must reproduce the very same seed keys."""
    def fn(seed_keys, params):
        x = _flat(params)
        noise = jax.vmap(lambda k: jax.random.normal(k, ()))(seed_keys)  # [S], common to all members
        raw = -jnp.sum((x - 0.3) ** 2, axis=1)[:, None] + noise[None, :]  # [P, S]
        return raw[..., None]

    return meta.Inner(fn=jax.jit(fn), tasks=["toy"], env_steps=0, lo=np.array([-100.0], np.float32),
                      hi=np.array([0.0], np.float32))


TOY = meta.MetaConfig(objective="lpo", envs=("CartPole-v1",), inner_steps=(128,), population=4, generations=2,
                      seeds=2, sigma=0.05, lr=0.1, optimizer="sgd", hidden=4)


def test_meta_training_improves_fitness_on_linear_toy(tmp_path):
    inner, c = linear_inner(TOY)
    before = meta.initial_params(TOY)
    res = meta.meta_train(TOY, str(tmp_path / "run"), inner=inner, progress=False)
    h = res.history
    assert [r["generation"] for r in h] == [0, 1]
    # population mean fitness of generation 2 is strictly higher than that of generation 1
    assert h[1]["mean"] > h[0]["mean"] + 1e-4, h
    # and so is the fitness of the ES mean (the exported objective)
    lo, hi = inner.lo, inner.hi

    def fitness(p):
        raw = np.asarray(_flat(jax.tree.map(lambda x: jnp.asarray(x)[None], p)) @ c.T)[0]
        return float(np.mean((raw - lo) / (hi - lo)))

    assert fitness(res.mean_params) > fitness(before) + 1e-4
    # the logs, the plot and the exported objective exist and agree with the history
    out = tmp_path / "run"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["fitness_history"]["mean"] == [r["mean"] for r in h]
    assert len((out / "log.csv").read_text().strip().splitlines()) == 3
    assert (out / "fitness.png").stat().st_size > 10_000
    loaded = obj.load(str(out / "objective.npz"))
    np.testing.assert_array_equal(loaded.init(None)["params"]["w1"], res.mean_params["w1"])


def _leaves_equal_bitwise(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes()


def test_checkpoint_resume_gives_bitwise_identical_es_state(tmp_path):
    cfg = dataclasses.replace(TOY, optimizer="adam", generations=3)
    inner = noisy_inner(cfg)
    full = meta.meta_train(cfg, str(tmp_path / "full"), inner=inner, progress=False)
    meta.meta_train(cfg, str(tmp_path / "cut"), inner=inner, progress=False, stop_after=1)
    resumed = meta.meta_train(cfg, str(tmp_path / "cut"), inner=inner, progress=False, resume=True)
    _leaves_equal_bitwise(full.es_state, resumed.es_state)
    assert [h["mean"] for h in full.history] == [h["mean"] for h in resumed.history]
    assert len(resumed.history) == 3
    # a different config cannot silently resume
    with pytest.raises(ValueError, match="sigma"):
        meta.meta_train(dataclasses.replace(cfg, sigma=0.5), str(tmp_path / "cut"), inner=inner,
                        progress=False, resume=True)


@pytest.mark.parametrize("strategy", ["snes", "cma_es"])
def test_other_strategies_run_and_move_the_mean(strategy):
    cfg = dataclasses.replace(TOY, strategy=strategy, generations=1)
    res = meta.meta_train(cfg, None, inner=noisy_inner(cfg), progress=False)
    start = meta.initial_params(cfg)
    assert np.isfinite(res.history[0]["mean"])
    assert not np.array_equal(np.asarray(start["w1"]), res.mean_params["w1"])


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="MetaConfig.strategy.*open_es"):
        meta.validate(dataclasses.replace(TOY, strategy="pso"))
    with pytest.raises(ValueError, match="MetaConfig.population.*even"):
        meta.validate(dataclasses.replace(TOY, population=5))
    with pytest.raises(ValueError, match="MetaConfig.envs.*reference returns"):
        meta.validate(dataclasses.replace(TOY, envs=("Pong-misc",)))
    with pytest.raises(ValueError, match="MetaConfig.objective"):
        meta.validate(dataclasses.replace(TOY, objective="dpo"))


# --------------------------------------------------------------------------------------
# Export / load
# --------------------------------------------------------------------------------------


def _batch(seed, progress=0.3, horizon=50.0):
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    return obj.PolicyBatch(0.3 * jax.random.normal(k1, (64,)), jax.random.normal(k2, (64,)),
                           jnp.float32(progress), jnp.float32(horizon))


@pytest.mark.parametrize("base", ["lpo", "ta_lpo"])
def test_exported_objective_gives_identical_loss_and_grad(tmp_path, base):
    hp = obj.get(base).init(jax.random.PRNGKey(3))
    hp = {**hp, "ppo_weight": jnp.float32(0.7), "epsilon": jnp.float32(0.15)}
    path = obj.save(str(tmp_path / "objective.npz"), base, hp, {"note": "test"})
    loaded = obj.load(path)
    assert loaded.loss is obj.get(base).loss
    hp2 = loaded.init(jax.random.PRNGKey(99))  # the key is ignored: the saved values come back
    for i in range(3):
        b = _batch(i)
        l1, g1 = jax.value_and_grad(lambda lr: obj.get(base).loss(b._replace(log_ratio=lr), **hp))(b.log_ratio)
        l2, g2 = jax.value_and_grad(lambda lr: loaded.loss(b._replace(log_ratio=lr), **hp2))(b.log_ratio)
        assert np.asarray(l1).tobytes() == np.asarray(l2).tobytes()
        np.testing.assert_array_equal(np.asarray(g1), np.asarray(g2))
    # directory and sidecar paths work too
    assert obj.load(str(tmp_path)).init(None)["epsilon"] == np.float32(0.15)
    assert obj.load(str(tmp_path / "objective.json")).init(None)["ppo_weight"] == np.float32(0.7)


def test_bad_objective_files_fail_clearly(tmp_path):
    hp = obj.get("lpo").init(jax.random.PRNGKey(0))
    good = obj.save(str(tmp_path / "good.npz"), "lpo", hp)
    side = json.loads((tmp_path / "good.json").read_text())

    with pytest.raises(obj.export.ObjectiveFileError, match="nope.npz: no such file"):
        obj.load(str(tmp_path / "nope.npz"))

    (tmp_path / "base.npz").write_bytes(open(good, "rb").read())
    (tmp_path / "base.json").write_text(json.dumps({**side, "base": "lpoo"}))
    with pytest.raises(obj.export.ObjectiveFileError, match=r"base.json: key 'base' is 'lpoo'.*ppo_clip"):
        obj.load(str(tmp_path / "base.npz"))

    flat = dict(np.load(good))
    del flat["epsilon"]
    np.savez(tmp_path / "missing.npz", **flat)
    (tmp_path / "missing.json").write_text(json.dumps(side))
    with pytest.raises(obj.export.ObjectiveFileError, match=r"missing.npz: key 'epsilon'"):
        obj.load(str(tmp_path / "missing.npz"))

    flat = dict(np.load(good))
    flat["params/w1"] = flat["params/w1"][:3]  # wrong shape for an 8-feature LPO net
    np.savez(tmp_path / "shape.npz", **flat)
    (tmp_path / "shape.json").write_text(json.dumps(side))
    with pytest.raises(obj.export.ObjectiveFileError, match=r"shape.npz: arrays do not fit objective 'lpo'"):
        obj.load(str(tmp_path / "shape.npz"))

    flat = dict(np.load(good))
    flat["epsilon"] = np.array([np.nan], np.float32)[0]
    np.savez(tmp_path / "nan.npz", **flat)
    (tmp_path / "nan.json").write_text(json.dumps(side))
    with pytest.raises(obj.export.ObjectiveFileError, match=r"nan.npz: key 'epsilon' has non-finite"):
        obj.load(str(tmp_path / "nan.npz"))

    flat = dict(np.load(good))
    flat["epsilon"] = np.array([{"evil": 1}], dtype=object)  # would need pickle to read
    np.savez(tmp_path / "pickle.npz", **flat)
    (tmp_path / "pickle.json").write_text(json.dumps(side))
    with pytest.raises(obj.export.ObjectiveFileError, match=r"pickle.npz: key 'epsilon' cannot be read without pickle"):
        obj.load(str(tmp_path / "pickle.npz"))

    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    (tmp_path / "junk.json").write_text(json.dumps(side))
    with pytest.raises(obj.export.ObjectiveFileError, match=r"junk.npz: not a readable .npz"):
        obj.load(str(tmp_path / "junk.npz"))

    (tmp_path / "fmt.npz").write_bytes(open(good, "rb").read())
    (tmp_path / "fmt.json").write_text("{not json")
    with pytest.raises(obj.export.ObjectiveFileError, match=r"fmt.json: not a readable JSON"):
        obj.load(str(tmp_path / "fmt.npz"))


# --------------------------------------------------------------------------------------
# Drift constraints for *any* parameters (tests/test_objectives.py draws weights from the
# initialisers; here hypothesis draws the weights themselves, of several widths, far from
# any initialiser, plus arbitrary ppo_weight and epsilon).
# --------------------------------------------------------------------------------------

B = 16
FAST = settings(max_examples=40, deadline=None)


@functools.lru_cache(maxsize=None)
def _drift_check(base):
    def drift(r, a, w1, w2, pw, eps, prog, hor):
        p = {"w1": w1, "w2": w2}
        if base == "lpo":
            return obj.lpo_drift(r, a, params=p, ppo_weight=pw, epsilon=eps)
        return obj.ta_lpo_drift(r, a, prog, hor, params=p, ppo_weight=pw, epsilon=eps)

    @jax.jit
    def check(r, a, w1, w2, pw, eps, prog, hor):
        ones = jnp.ones_like(r)
        value = drift(r, a, w1, w2, pw, eps, prog, hor)
        at_one = drift(ones, a, w1, w2, pw, eps, prog, hor)
        grad_one = jax.grad(lambda x: jnp.sum(drift(x, a, w1, w2, pw, eps, prog, hor)))(ones)
        return value, at_one, grad_one

    return check


def _weights(n_in, hidden):
    el = st.floats(-1e3, 1e3, width=32, allow_nan=False)
    return hnp.arrays(np.float32, (n_in, hidden), elements=el), hnp.arrays(np.float32, (hidden, 1), elements=el)


@pytest.mark.parametrize("base,n_in", [("lpo", 8), ("ta_lpo", 24)])
@pytest.mark.parametrize("hidden", [1, 5])
@FAST
@given(data=st.data(),
       r=hnp.arrays(np.float32, (B,), elements=st.floats(float(np.float32(0.0625)), 20.0, width=32)),
       a=hnp.arrays(np.float32, (B,), elements=st.floats(-50.0, 50.0, width=32)),
       pw=st.floats(-10.0, 10.0, width=32), eps=st.floats(0.015625, 1.0, width=32),
       prog=st.floats(0.0, 1.0, width=32), hor=st.floats(1.0, 1e7, width=32))
def test_drift_constraints_for_arbitrary_weights(base, n_in, hidden, data, r, a, pw, eps, prog, hor):
    w1s, w2s = _weights(n_in, hidden)
    w1, w2 = data.draw(w1s), data.draw(w2s)
    value, at_one, grad_one = map(np.asarray, _drift_check(base)(r, a, w1, w2, np.float32(pw), np.float32(eps),
                                                                 np.float32(prog), np.float32(hor)))
    assert np.all(np.isfinite(value)) and np.all(value >= 0.0)
    assert np.all(at_one == 0.0)
    assert np.all(grad_one == 0.0)


# --------------------------------------------------------------------------------------
# The real thing, tiny: PPO inner loop through the CLI, then train with the learned objective
# --------------------------------------------------------------------------------------


def test_cli_meta_train_then_train_with_learned_objective(tmp_path):
    from rlx import cli

    out = tmp_path / "meta"
    cli.main(["meta-train", "--objective", "ta_lpo", "--envs", "CartPole-v1", "--population", "2", "--generations",
              "1", "--inner-steps", "128,256", "--ppo", "num_envs=2", "--ppo", "num_steps=64", "--ppo",
              "num_minibatches=2", "--ppo", "update_epochs=1", "--ppo", "hidden=8", "--hidden", "4",
              "--eval-episodes", "2", "--out", str(out), "--no-progress"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tasks"] == ["CartPole-v1@128", "CartPole-v1@256"]
    assert len(summary["fitness_history"]["mean"]) == 1 and np.isfinite(summary["fitness_history"]["mean"][0])
    assert summary["inner_env_steps_per_generation"] == 2 * (128 + 256)
    for f in ("objective.npz", "objective.json", "best_member.npz", "fitness.png", "log.csv", "config.json"):
        assert (out / f).exists(), f
    run = tmp_path / "train"
    cli.main(["train", "ppo", "--objective", str(out / "objective.npz"), "--steps", "128", "--num-envs", "2",
              "--num-steps", "64", "--num-minibatches", "2", "--update-epochs", "1", "--hidden", "8", "--seeds", "1",
              "--eval-episodes", "2", "--no-progress", "--out", str(run)])
    assert np.isfinite(json.loads((run / "summary.json").read_text())["final_return"][0])
    with pytest.raises(SystemExit, match="no reference returns"):
        cli.main(["meta-train", "--envs", "Pong-misc", "--out", str(tmp_path / "x")])

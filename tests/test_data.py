import json
import os

import h5py
import jax
import numpy as np
import pytest

from rlx import data, envs
from rlx.data import DatasetError, Metadata


def make_dataset(n_episodes=3, length=5, obs_dim=3, act_dim=1, seed=0):
    """Whole episodes laid end to end: the first ones truncated, the last one terminated."""
    rng = np.random.default_rng(seed)
    obs, act, rew, nxt, term, trunc = [], [], [], [], [], []
    for e in range(n_episodes):
        o = rng.normal(size=(length + 1, obs_dim)).astype(np.float32)
        obs.append(o[:-1]), nxt.append(o[1:])
        act.append(rng.uniform(-1, 1, size=(length, act_dim)).astype(np.float32))
        rew.append(np.full(length, float(e + 1), np.float32))
        t = np.zeros(length, bool)
        term.append(t.copy()), trunc.append(t.copy())
        (term if e == n_episodes - 1 else trunc)[-1][-1] = True
    meta = Metadata(env_id="Pendulum-v1", ref_random_return=0.0, ref_expert_return=20.0, source="test")
    return data.from_arrays(*(np.concatenate(x) for x in (obs, act, rew, nxt, term, trunc)), metadata=meta)


def assert_same(a, b):
    for k in data.FIELDS:
        np.testing.assert_array_equal(np.asarray(getattr(a, k)), np.asarray(getattr(b, k)), err_msg=k)


@pytest.mark.parametrize("fmt", ["npz", "hdf5", "minari"])
def test_round_trip(tmp_path, fmt):
    ds = make_dataset()
    path = str(tmp_path / {"npz": "d.npz", "hdf5": "d.hdf5", "minari": "d"}[fmt])
    {"npz": data.save_npz, "hdf5": data.save_d4rl, "minari": data.save_minari}[fmt](ds, path)
    back = data.load(path)
    assert_same(ds, back)
    assert back.metadata.env_id == "Pendulum-v1" and back.metadata.ref_expert_return == 20.0


def test_episode_returns_and_normalized_score():
    ds = make_dataset(n_episodes=3, length=5)
    np.testing.assert_allclose(ds.episode_returns(), [5.0, 10.0, 15.0])
    np.testing.assert_allclose(ds.normalized_score([10.0]), [50.0])


def test_d4rl_without_next_observations_drops_timeouts(tmp_path):
    path = str(tmp_path / "d4rl.hdf5")
    obs = np.arange(6, dtype=np.float32)[:, None]
    with h5py.File(path, "w") as f:
        f["observations"] = obs
        f["actions"] = np.zeros((6, 1), np.float32)
        f["rewards"] = np.arange(6, dtype=np.float32)
        f["terminals"] = np.array([0, 0, 1, 0, 0, 0], bool)   # episode 0 terminates at step 2
        f["timeouts"] = np.array([0, 0, 0, 0, 1, 0], bool)    # episode 1 is cut at step 4
    ds = data.load(path)
    # Step 4 (timeout: next obs unknown) and step 5 (last in file) are dropped.
    np.testing.assert_array_equal(np.asarray(ds.obs)[:, 0], [0, 1, 2, 3])
    np.testing.assert_array_equal(np.asarray(ds.next_obs)[:, 0], [1, 2, 3, 4])
    np.testing.assert_array_equal(np.asarray(ds.terminated), [False, False, True, False])
    np.testing.assert_array_equal(np.asarray(ds.truncated), [False, False, False, True])


def test_sample_is_pure_and_vmappable():
    ds = make_dataset()
    b1 = jax.jit(lambda k: ds.sample(k, 8))(jax.random.PRNGKey(0))
    b2 = ds.sample(jax.random.PRNGKey(0), 8)
    assert_same(b1, b2)
    many = jax.vmap(lambda k: ds.sample(k, 4))(jax.random.split(jax.random.PRNGKey(0), 3))
    assert many.obs.shape == (3, 4, 3)


# ------------------------------------------------------------------ bad files, named errors

def write_d4rl(path, **override):
    arrays = {"observations": np.zeros((4, 3), np.float32), "actions": np.zeros((4, 1), np.float32),
              "rewards": np.zeros(4, np.float32), "terminals": np.array([0, 0, 0, 1], bool),
              "timeouts": np.zeros(4, bool)}
    arrays.update(override)
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            if v is not None:
                f[k] = v


def test_missing_key(tmp_path):
    path = str(tmp_path / "x.hdf5")
    write_d4rl(path, rewards=None)
    with pytest.raises(DatasetError, match=r"x\.hdf5: missing key 'rewards'"):
        data.load(path)


def test_lengths_differ(tmp_path):
    path = str(tmp_path / "x.hdf5")
    write_d4rl(path, rewards=np.zeros(3, np.float32))
    with pytest.raises(DatasetError, match="key 'rewards' has 3 entries but 'observations' has 4"):
        data.load(path)


def test_nan_values(tmp_path):
    path = str(tmp_path / "x.hdf5")
    obs = np.zeros((4, 3), np.float32)
    obs[2, 1] = np.nan
    write_d4rl(path, observations=obs)
    with pytest.raises(DatasetError, match=r"key 'observations' has NaN or inf values \(first at index 2\)"):
        data.load(path)


def test_shape_does_not_match_env():
    ds = make_dataset(obs_dim=4)
    env, params = envs.make("Pendulum-v1")
    with pytest.raises(DatasetError, match=r"key 'obs' has observation shape \(4,\).*\(3,\)"):
        data.check_env(ds, env, params)
    data.check_env(make_dataset(obs_dim=3), env, params)  # the right shape passes


@pytest.mark.parametrize("fmt", ["hdf5", "npz"])
def test_truncated_file(tmp_path, fmt):
    path = str(tmp_path / f"d.{fmt}")
    (data.save_d4rl if fmt == "hdf5" else data.save_npz)(make_dataset(), path)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(DatasetError, match="truncated or corrupt") as e:
        data.load(path)
    assert path in str(e.value)


def test_npz_with_pickled_objects_is_refused(tmp_path):
    path = str(tmp_path / "evil.npz")
    arrays = {k: np.zeros(3) for k in data.FIELDS}
    arrays["obs"] = np.array([{"a": 1}, None, 3], dtype=object)
    np.savez(path, **arrays)
    with pytest.raises(DatasetError, match="pickle"):
        data.load(path)


def test_minari_needs_one_more_observation(tmp_path):
    ds = make_dataset()
    path = str(tmp_path / "m")
    data.save_minari(ds, path)
    with h5py.File(os.path.join(path, "main_data.hdf5"), "a") as f:
        obs = f["episode_1/observations"][()]
        del f["episode_1/observations"]
        f["episode_1/observations"] = obs[:-1]
    with pytest.raises(DatasetError, match="episode_1: key 'observations' has 5 entries; Minari episodes need T"):
        data.load(path)


def test_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        data.load(str(tmp_path / "nope.hdf5"))
    p = tmp_path / "d.csv"
    p.write_text("1,2")
    with pytest.raises(DatasetError, match="unknown dataset format '.csv'"):
        data.load(str(p))

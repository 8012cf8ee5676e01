"""Offline datasets: one pytree of transitions, readers and writers for the standard formats.

    ds = rlx.data.load("hopper-medium.hdf5")            # D4RL HDF5
    ds = rlx.data.load("pendulum-medium/")              # a Minari dataset directory
    ds = rlx.data.load("pendulum-medium.npz")           # rlx's own npz
    batch = ds.sample(key, 256)                          # pure, jittable, vmappable

Nothing is ever unpickled: HDF5 through h5py, npz with ``allow_pickle=False``, metadata as
JSON. Every reader validates before returning, and every error names the file and the key.

Formats:
  D4RL HDF5   observations, actions, rewards, terminals, timeouts [, next_observations]
  Minari dir  main_data.hdf5 with groups episode_<i> holding observations (T+1 entries),
              actions, rewards, terminations, truncations (T entries); metadata.json beside it
  npz         obs, action, reward, next_obs, terminated, truncated, metadata (a JSON string)
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

FIELDS = ("obs", "action", "reward", "next_obs", "terminated", "truncated")
D4RL_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts")
MINARI_KEYS = ("observations", "actions", "rewards", "terminations", "truncations")


class DatasetError(ValueError):
    """A dataset file that cannot be used; the message names the file and the key."""


@dataclasses.dataclass(frozen=True)
class Metadata:
    """What a dataset is and how to score against it.

    ``ref_random_return`` and ``ref_expert_return`` define the normalised score
    100·(R − R_random)/(R_expert − R_random), as in D4RL.
    """

    env_id: str = ""
    ref_random_return: float | None = None
    ref_expert_return: float | None = None
    source: str = ""  # how the data were made, e.g. "rlx data collect --quality medium ..."

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str, where: str = "metadata") -> "Metadata":
        try:
            raw = json.loads(text)
        except (json.JSONDecodeError, TypeError) as e:
            raise DatasetError(f"{where}: metadata is not valid JSON ({e})") from None
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})


@struct.dataclass
class Dataset:
    """Transitions [N, ...] plus static metadata. A pytree: it can live inside jit and vmap."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    metadata: Metadata = struct.field(pytree_node=False, default=Metadata())

    def __len__(self) -> int:
        return int(self.reward.shape[0])

    def sample(self, key, batch_size: int) -> "Dataset":
        """``batch_size`` transitions drawn uniformly with replacement."""
        idx = jax.random.randint(key, (batch_size,), 0, self.reward.shape[0])
        return jax.tree.map(lambda x: x[idx], self)

    def episode_returns(self) -> np.ndarray:
        """Returns of the complete episodes (those that end in termination or truncation)."""
        reward = np.asarray(self.reward, np.float64)
        done = np.logical_or(np.asarray(self.terminated), np.asarray(self.truncated))
        ends = np.flatnonzero(done)
        if ends.size == 0:
            return np.zeros(0)
        sums = np.cumsum(reward)[ends]
        return np.diff(np.concatenate([[0.0], sums]))

    def normalized_score(self, returns) -> np.ndarray:
        """100·(R − R_random)/(R_expert − R_random) with this dataset's reference returns."""
        m = self.metadata
        if m.ref_random_return is None or m.ref_expert_return is None:
            raise DatasetError(f"dataset for {m.env_id or 'an unnamed env'} has no reference returns; "
                               "set metadata.ref_random_return and ref_expert_return")
        return 100.0 * (np.asarray(returns, np.float64) - m.ref_random_return) / (
            m.ref_expert_return - m.ref_random_return)

    def replace_metadata(self, **changes) -> "Dataset":
        return self.replace(metadata=dataclasses.replace(self.metadata, **changes))


def from_arrays(obs, action, reward, next_obs, terminated, truncated, metadata: Metadata | None = None,
                where: str = "arrays") -> Dataset:
    """Build a validated Dataset from numpy arrays (float32 data, bool flags)."""
    arrays = {"obs": obs, "action": action, "reward": reward, "next_obs": next_obs, "terminated": terminated,
              "truncated": truncated}
    _validate(arrays, where)
    f32 = lambda x: jnp.asarray(np.asarray(x, np.float32))
    return Dataset(f32(obs), f32(action) if np.asarray(action).dtype.kind == "f" else jnp.asarray(action),
                   f32(reward), f32(next_obs), jnp.asarray(np.asarray(terminated, bool)),
                   jnp.asarray(np.asarray(truncated, bool)), metadata or Metadata())


def _validate(arrays: dict[str, Any], where: str) -> None:
    n = None
    for key, value in arrays.items():
        a = np.asarray(value)
        if a.ndim == 0:
            raise DatasetError(f"{where}: key {key!r} is a scalar; expected one entry per transition")
        if n is None:
            n, first = a.shape[0], key
        elif a.shape[0] != n:
            raise DatasetError(f"{where}: key {key!r} has {a.shape[0]} entries but {first!r} has {n}; "
                               "all arrays must have one entry per transition")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            bad = int(np.flatnonzero(~np.isfinite(a.reshape(a.shape[0], -1)).all(1))[0])
            raise DatasetError(f"{where}: key {key!r} has NaN or inf values (first at index {bad})")
        if a.dtype.kind == "O":
            raise DatasetError(f"{where}: key {key!r} holds Python objects; only numeric arrays are read")
    if n == 0:
        raise DatasetError(f"{where}: the dataset is empty")
    if "next_obs" in arrays and np.shape(arrays["obs"]) != np.shape(arrays["next_obs"]):
        raise DatasetError(f"{where}: obs has shape {np.shape(arrays['obs'])} but next_obs has "
                           f"{np.shape(arrays['next_obs'])}")


def check_env(ds: Dataset, env, env_params, where: str = "dataset") -> None:
    """Fail with a named error if the dataset's observation or action shape does not fit the env."""
    from rlx import envs

    spec = envs.spec(env, env_params)
    obs_shape = tuple(ds.obs.shape[1:])
    if obs_shape != spec.obs_shape:
        raise DatasetError(f"{where}: key 'obs' has observation shape {obs_shape}, but the env "
                           f"{ds.metadata.env_id or ''} observes shape {spec.obs_shape}")
    act_shape = tuple(ds.action.shape[1:])
    want = () if spec.discrete else (spec.num_actions,)
    if act_shape != want:
        raise DatasetError(f"{where}: key 'action' has action shape {act_shape}, but the env takes {want}")


@struct.dataclass
class Prepared:
    """A dataset ready for an offline agent, and what evaluation needs to undo the preparation.

    ``data``: observations standardised (if asked), actions mapped to [−1, 1] by the env's
    bounds, rewards scaled. ``obs_mean``/``obs_std`` standardise env observations the same way;
    ``action_low``/``action_high`` map [−1, 1] back (``rlx.envs.RescaleAction``).
    """

    data: Dataset
    obs_mean: jax.Array
    obs_std: jax.Array
    action_low: np.ndarray = struct.field(pytree_node=False)
    action_high: np.ndarray = struct.field(pytree_node=False)
    reward_scale: float = struct.field(pytree_node=False, default=1.0)


REWARD_SCALES = ("none", "episode_range")


def prepare(ds: Dataset, env, env_params, *, normalize_obs: bool = False, reward_scale: str = "none",
            where: str = "dataset") -> Prepared:
    """Check ``ds`` against the env and prepare it for an offline agent (done once, outside jit).

    reward_scale: "none", or "episode_range": r × 1000 / (max − min episode return), IQL's
    choice for locomotion data.
    """
    from rlx import envs

    check_env(ds, env, env_params, where)
    spec = envs.spec(env, env_params)
    if spec.discrete:
        raise DatasetError(f"{where}: offline agents here need a continuous action space; the env has "
                           f"{spec.num_actions} discrete actions")
    if reward_scale not in REWARD_SCALES:
        raise DatasetError(f"reward_scale={reward_scale!r} is not accepted; choose one of: {', '.join(REWARD_SCALES)}")
    low, high = np.asarray(spec.action_low, np.float32), np.asarray(spec.action_high, np.float32)
    obs = np.asarray(ds.obs)
    mean = obs.mean(0) if normalize_obs else np.zeros(spec.obs_shape, np.float32)
    std = obs.std(0) + 1e-3 if normalize_obs else np.ones(spec.obs_shape, np.float32)
    scale = 1.0
    if reward_scale == "episode_range":
        rets = ds.episode_returns()
        if len(rets) < 2:
            raise DatasetError(f"{where}: reward_scale='episode_range' needs at least 2 complete episodes")
        scale = 1000.0 / max(float(rets.max() - rets.min()), 1e-6)
    norm = lambda o: (o - mean) / std
    out = ds.replace(obs=norm(ds.obs), next_obs=norm(ds.next_obs), reward=ds.reward * scale,
                     action=jnp.clip(2.0 * (ds.action - low) / (high - low) - 1.0, -1.0, 1.0))
    return Prepared(out, jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32), low, high, scale)


# ----------------------------------------------------------------------------- reading

def load(path: str) -> Dataset:
    """Read a D4RL .hdf5/.h5 file, a Minari dataset directory, or an rlx .npz file."""
    if not os.path.exists(path):
        raise DatasetError(f"{path}: no such file or directory")
    if os.path.isdir(path):
        return load_minari(path)
    ext = os.path.splitext(path)[1].lower()
    if ext in (".hdf5", ".h5"):
        return load_d4rl(path)
    if ext == ".npz":
        return load_npz(path)
    raise DatasetError(f"{path}: unknown dataset format {ext!r}; expected .hdf5/.h5 (D4RL), .npz, "
                       "or a Minari dataset directory")


def _open_h5(path: str):
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise DatasetError(f"{path}: cannot be read as HDF5: the file is truncated or corrupt ({e})") from None


def _read(group, key: str, where: str) -> np.ndarray:
    if key not in group:
        present = ", ".join(sorted(group.keys())) or "nothing"
        raise DatasetError(f"{where}: missing key {key!r} (found: {present})")
    try:
        return np.asarray(group[key][()])
    except (OSError, RuntimeError, ValueError) as e:
        raise DatasetError(f"{where}: key {key!r} cannot be read: the file is truncated or corrupt ({e})") from None


def load_d4rl(path: str, metadata: Metadata | None = None) -> Dataset:
    """Read D4RL's HDF5 layout.

    ``next_observations`` is optional. Without it, next_obs[i] = observations[i+1], and a
    transition whose episode ends by timeout (or that is the file's last) is dropped, since
    its next observation is not in the file; D4RL's own ``qlearning_dataset`` does the same.
    """
    with _open_h5(path) as f:
        obs = _read(f, "observations", path)
        action = _read(f, "actions", path)
        reward = _read(f, "rewards", path)
        terminals = _read(f, "terminals", path).astype(bool)
        timeouts = _read(f, "timeouts", path).astype(bool)
        _validate({"observations": obs, "actions": action, "rewards": reward, "terminals": terminals,
                   "timeouts": timeouts}, path)
        if "next_observations" in f:
            next_obs = _read(f, "next_observations", path)
            keep = np.ones(len(reward), bool)
        else:
            next_obs = np.concatenate([obs[1:], obs[-1:]])
            keep = ~timeouts
            keep[-1] = bool(terminals[-1])
            # A timeout drops the step; the step before it now ends its (cut) episode.
            timeouts = np.concatenate([timeouts[1:], [False]]) & keep
        meta = metadata or Metadata.from_json(f.attrs.get("rlx_metadata", "{}"), path)
    return from_arrays(obs[keep], action[keep], reward[keep], next_obs[keep], terminals[keep], timeouts[keep],
                       meta, where=path)


def _minari_files(path: str) -> tuple[str, str | None]:
    for base in (path, os.path.join(path, "data")):
        h5 = os.path.join(base, "main_data.hdf5")
        if os.path.exists(h5):
            meta = os.path.join(base, "metadata.json")
            return h5, meta if os.path.exists(meta) else None
    raise DatasetError(f"{path}: not a Minari dataset directory (no main_data.hdf5 in it or in data/)")


def load_minari(path: str) -> Dataset:
    """Read a Minari dataset directory: episode_<i> groups, observations having T+1 entries."""
    h5, meta_path = _minari_files(path)
    meta = Metadata()
    if meta_path:
        with open(meta_path) as f:
            raw = f.read()
        meta = Metadata.from_json(raw, meta_path)
        extra = json.loads(raw)
        meta = dataclasses.replace(meta, env_id=meta.env_id or str(extra.get("env_id", "")))
    parts = {k: [] for k in FIELDS}
    with _open_h5(h5) as f:
        names = sorted((k for k in f.keys() if k.startswith("episode_")), key=lambda k: int(k.split("_")[1]))
        if not names:
            raise DatasetError(f"{h5}: no episode_<i> groups found")
        for name in names:
            where = f"{h5}:{name}"
            ep = {k: _read(f[name], k, where) for k in MINARI_KEYS}
            t = len(ep["actions"])
            if len(ep["observations"]) != t + 1:
                raise DatasetError(f"{where}: key 'observations' has {len(ep['observations'])} entries; Minari "
                                   f"episodes need T+1 = {t + 1} (one more than 'actions')")
            _validate({"actions": ep["actions"], "rewards": ep["rewards"], "terminations": ep["terminations"],
                       "truncations": ep["truncations"]}, where)
            _validate({"observations": ep["observations"]}, where)
            parts["obs"].append(ep["observations"][:-1])
            parts["next_obs"].append(ep["observations"][1:])
            parts["action"].append(ep["actions"])
            parts["reward"].append(ep["rewards"])
            parts["terminated"].append(ep["terminations"].astype(bool))
            parts["truncated"].append(ep["truncations"].astype(bool))
    return from_arrays(**{k: np.concatenate(v) for k, v in parts.items()}, metadata=meta, where=path)


def load_npz(path: str) -> Dataset:
    """Read rlx's npz layout (``allow_pickle=False``: object arrays are refused)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in FIELDS if k not in z.files]
            if missing:
                raise DatasetError(f"{path}: missing key {missing[0]!r} (found: {', '.join(sorted(z.files))})")
            arrays = {k: z[k] for k in FIELDS}
            meta = Metadata.from_json(str(z["metadata"]), path) if "metadata" in z.files else Metadata()
    except DatasetError:
        raise
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise DatasetError(f"{path}: holds pickled objects, which rlx never loads") from None
        raise DatasetError(f"{path}: cannot be read as npz: truncated or corrupt ({e})") from None
    except Exception as e:  # zipfile.BadZipFile, EOFError, OSError: all mean the file is damaged
        raise DatasetError(f"{path}: cannot be read as npz: truncated or corrupt ({type(e).__name__}: {e})") from None
    return from_arrays(**arrays, metadata=meta, where=path)


# ----------------------------------------------------------------------------- writing

def _numpy(ds: Dataset) -> dict[str, np.ndarray]:
    return {k: np.asarray(getattr(ds, k)) for k in FIELDS}


def save_npz(ds: Dataset, path: str) -> None:
    a = _numpy(ds)
    np.savez_compressed(path, **a, metadata=np.array(ds.metadata.to_json()))


def save_d4rl(ds: Dataset, path: str) -> None:
    """Write D4RL's layout, with next_observations, and rlx's metadata as an HDF5 attribute."""
    import h5py

    a = _numpy(ds)
    with h5py.File(path, "w") as f:
        f["observations"], f["actions"], f["rewards"] = a["obs"], a["action"], a["reward"]
        f["next_observations"], f["terminals"], f["timeouts"] = a["next_obs"], a["terminated"], a["truncated"]
        f.attrs["rlx_metadata"] = ds.metadata.to_json()


def save_minari(ds: Dataset, path: str) -> None:
    """Write a Minari-style directory. The data must be whole episodes laid end to end."""
    import h5py

    a = _numpy(ds)
    done = np.logical_or(a["terminated"], a["truncated"])
    if not done[-1]:
        raise DatasetError(f"{path}: the last transition does not end an episode; Minari stores whole episodes")
    ends = np.flatnonzero(done) + 1
    starts = np.concatenate([[0], ends[:-1]])
    os.makedirs(path, exist_ok=True)
    with h5py.File(os.path.join(path, "main_data.hdf5"), "w") as f:
        for i, (s, e) in enumerate(zip(starts, ends)):
            g = f.create_group(f"episode_{i}")
            g["observations"] = np.concatenate([a["obs"][s:e], a["next_obs"][e - 1:e]])
            g["actions"], g["rewards"] = a["action"][s:e], a["reward"][s:e]
            g["terminations"], g["truncations"] = a["terminated"][s:e], a["truncated"][s:e]
    with open(os.path.join(path, "metadata.json"), "w") as f:
        f.write(json.dumps({**dataclasses.asdict(ds.metadata), "total_episodes": int(len(ends)),
                            "total_steps": int(len(a["reward"]))}, indent=2))

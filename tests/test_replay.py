"""Replay buffer: wraparound, uniform sampling, n-step returns across episode boundaries, vmap."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import replay


def _row(t, num_envs=2, term=None, trunc=None):
    """Row t of a stream whose obs encode (t, env): obs = 10·t + env, next_obs = obs + 0.5."""
    e = jnp.arange(num_envs, dtype=jnp.float32)
    obs = (10.0 * t + e)[:, None]
    return replay.Transition(obs=obs, action=obs, reward=jnp.full(num_envs, float(t)),
                             terminated=jnp.zeros(num_envs, bool) if term is None else jnp.asarray(term),
                             truncated=jnp.zeros(num_envs, bool) if trunc is None else jnp.asarray(trunc),
                             next_obs=obs + 0.5)


def test_wraparound_keeps_the_newest_rows_in_place():
    buf = replay.init(6, _row(0))  # 3 rows of 2 envs
    assert replay.rows(buf) == 3
    for t in range(5):
        buf = replay.add(buf, _row(t))
    # Rows 0..4 written into 3 slots: slot i holds the newest t with t % 3 == i.
    np.testing.assert_array_equal(buf.data.reward[:, 0], [3.0, 4.0, 2.0])
    assert int(buf.pos) == 5 % 3 and int(buf.size) == 3
    # Sampling only ever returns stored rows, and covers all of them.
    b = replay.sample(buf, jax.random.PRNGKey(0), 2000)
    assert set(np.unique(np.asarray(b.reward)).tolist()) == {2.0, 3.0, 4.0}
    assert set(np.unique(np.asarray(b.obs[:, 0]) % 10).tolist()) == {0.0, 1.0}


def test_partly_filled_buffer_samples_only_written_rows():
    buf = replay.init(20, _row(0))
    for t in range(3):
        buf = replay.add(buf, _row(t + 1))
    b = replay.sample(buf, jax.random.PRNGKey(1), 1000)
    assert set(np.unique(np.asarray(b.reward)).tolist()) == {1.0, 2.0, 3.0}
    # Uniform: each of the 6 stored transitions about 1/6 of the time.
    counts = np.unique(np.asarray(b.obs[:, 0]), return_counts=True)[1]
    assert len(counts) == 6 and counts.min() > 120 and counts.max() < 220, counts


def test_one_step_discount_zero_only_on_termination():
    buf = replay.init(4, _row(0))
    buf = replay.add(buf, _row(0, term=[True, False], trunc=[False, True]))
    b = replay.sample(buf, jax.random.PRNGKey(0), 64, gamma=0.9)
    env = np.asarray(b.obs[:, 0]) % 10
    np.testing.assert_allclose(np.asarray(b.discount), np.where(env == 0, 0.0, 0.9), atol=1e-7)
    np.testing.assert_allclose(np.asarray(b.next_obs[:, 0]), np.asarray(b.obs[:, 0]) + 0.5)


def test_n_step_returns_stop_at_episode_ends():
    # One env; rewards r_t = t + 1. Truncation at t=1, termination at t=4.
    g, n = 0.5, 3
    buf = replay.init(16, _row(0, 1))
    for t in range(7):
        row = _row(t, 1, term=[t == 4], trunc=[t == 1])
        buf = replay.add(buf, row.replace(reward=jnp.array([t + 1.0])))
    b = replay.sample(buf, jax.random.PRNGKey(0), 512, n_step=n, gamma=g)
    start = np.asarray(b.obs[:, 0]) // 10
    # Starts with a full window written: t ≤ 7 − n = 4.
    assert set(start.astype(int).tolist()) == {0, 1, 2, 3, 4}
    expected = {  # t: (reward, discount, next state = true next obs of the last summed step)
        0: (1 + g * 2, g**2, 1),                   # truncated at 1: bootstrap from step 1's final obs
        1: (2.0, g, 1),                            # truncated immediately
        2: (3 + g * 4 + g**2 * 5, 0.0, 4),         # terminated at 4: no bootstrap
        3: (4 + g * 5, 0.0, 4),
        4: (5.0, 0.0, 4),
    }
    for t, (r, d, last) in expected.items():
        i = np.flatnonzero(start == t)
        np.testing.assert_allclose(np.asarray(b.reward)[i], r, rtol=1e-6)
        np.testing.assert_allclose(np.asarray(b.discount)[i], d, rtol=1e-6)
        np.testing.assert_allclose(np.asarray(b.next_obs)[i, 0], 10 * last + 0.5)


def test_n_step_window_is_one_env_stream_across_wraparound():
    g = 0.9
    buf = replay.init(8, _row(0))  # 4 rows
    for t in range(6):  # rows 2..5 stay; slots hold [4, 5, 2, 3]
        buf = replay.add(buf, _row(t))
    b = replay.sample(buf, jax.random.PRNGKey(2), 500, n_step=2, gamma=g)
    start = np.asarray(b.obs[:, 0]) // 10
    assert set(start.astype(int).tolist()) == {2, 3, 4}
    np.testing.assert_allclose(np.asarray(b.reward), start + g * (start + 1), rtol=1e-6)
    # next_obs comes from the same env, one row later.
    np.testing.assert_allclose(np.asarray(b.next_obs[:, 0]), np.asarray(b.obs[:, 0]) + 10.5)


def test_vmapped_buffers_equal_single_ones():
    def fill(key):
        buf = replay.init(6, _row(0))
        for t in range(4):
            buf = replay.add(buf, _row(t).replace(reward=jax.random.normal(jax.random.fold_in(key, t), (2,))))
        return buf, replay.sample(buf, key, 16, n_step=2, gamma=0.9)

    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    bufs, batches = jax.jit(jax.vmap(fill))(keys)
    for i in range(3):
        buf, batch = jax.jit(fill)(keys[i])
        for a, b in zip(jax.tree.leaves(batch), jax.tree.leaves(batches)):
            np.testing.assert_allclose(a, b[i], rtol=1e-6)


def test_capacity_smaller_than_a_row_is_an_error():
    with pytest.raises(ValueError, match="capacity=1"):
        replay.init(1, _row(0, 2))

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import envs
from toy_envs import Counter, CounterParams


def test_make_gymnax_and_spec():
    env, params = envs.make("CartPole-v1")
    s = envs.spec(env, params)
    assert s.obs_shape == (4,) and s.discrete and s.num_actions == 2
    env, params = envs.make("Pendulum-v1")
    s = envs.spec(env, params)
    assert not s.discrete and s.num_actions == 1 and s.action_low == (-2.0,) and s.action_high == (2.0,)


@pytest.mark.parametrize("bad", ["CartPol-v1", "brax:hoppper", "brax:hopper@warp", "pendulum"])
def test_unknown_env_lists_accepted_ids(bad):
    with pytest.raises(ValueError, match="env: unknown") as e:
        envs.make(bad)
    assert "hopper" in str(e.value) or "positional" in str(e.value)


def test_env_ids_cover_gymnax_and_brax():
    ids = envs.env_ids()
    assert "CartPole-v1" in ids and "Breakout-MinAtar" in ids and "brax:hopper" in ids


def test_autoreset_keeps_final_observation_and_flags():
    env = envs.AutoReset(Counter())
    p = CounterParams(max_steps_in_episode=3)
    obs, s = env.reset(jax.random.PRNGKey(0), p)
    seen = []
    for t in range(4):
        obs, s, r, term, trunc, info = env.step(jax.random.PRNGKey(t), s, 1, p)
        seen.append((float(obs[0]), float(info["final_observation"][0]), bool(term), bool(trunc)))
    # Steps 1, 2 continue; step 3 truncates: the final obs (3) is kept, the returned obs is the reset one (0).
    assert seen[:3] == [(1.0, 1.0, False, False), (2.0, 2.0, False, False), (0.0, 3.0, False, True)]
    assert seen[3] == (1.0, 1.0, False, False)


def test_termination_is_not_truncation():
    env = envs.AutoReset(Counter())
    p = CounterParams(max_steps_in_episode=3, terminal_at=2)
    _, s = env.reset(jax.random.PRNGKey(0), p)
    _, s, *_ = env.step(jax.random.PRNGKey(1), s, 1, p)
    obs, s, r, term, trunc, info = env.step(jax.random.PRNGKey(2), s, 1, p)
    assert bool(term) and not bool(trunc) and float(info["final_observation"][0]) == 2.0 and float(obs[0]) == 0.0


def test_episode_stats_report_return_and_length():
    env = envs.EpisodeStats(envs.AutoReset(Counter()))
    p = CounterParams(max_steps_in_episode=3, reward=2.0)
    _, s = env.reset(jax.random.PRNGKey(0), p)
    done, rets, lens = [], [], []
    for t in range(7):
        _, s, _, _, _, info = env.step(jax.random.PRNGKey(t), s, 0, p)
        done.append(bool(info["episode_done"]))
        rets.append(float(info["episode_return"]))
        lens.append(int(info["episode_length"]))
    assert done == [False, False, True, False, False, True, False]
    assert rets[2] == 6.0 and lens[2] == 3 and rets[5] == 6.0 and rets[0] == 0.0


def test_wrappers_vmap_over_keys_and_env_params():
    env, params = envs.make("CartPole-v1")
    vec = envs.NormalizeObservation(envs.VecEnv(env, 3))
    gravities = jnp.array([9.8, 5.0, 20.0])
    batch_params = jax.vmap(lambda g: params.replace(gravity=g))(gravities)
    keys = jax.random.split(jax.random.PRNGKey(0), 3)

    def rollout(key, p):
        obs, s = vec.reset(key, p)

        def step(carry, k):
            obs, s = carry
            obs, s, r, term, trunc, info = vec.step(k, s, jnp.ones(3, jnp.int32), p)
            return (obs, s), obs
        (_, s), traj = jax.lax.scan(step, (obs, s), jax.random.split(key, 20))
        return traj, s.mean

    traj, means = jax.jit(jax.vmap(rollout))(keys, batch_params)
    assert traj.shape == (3, 20, 3, 4) and np.isfinite(np.asarray(traj)).all()
    # Different gravity, different dynamics.
    assert not np.allclose(traj[0], traj[2])
    # Each variant equals running it alone.
    single, _ = jax.jit(rollout)(keys[2], params.replace(gravity=20.0))
    np.testing.assert_allclose(traj[2], single, rtol=1e-5, atol=1e-6)


def test_normalize_observation_tracks_running_statistics():
    env, params = envs.make("Pendulum-v1")
    vec = envs.NormalizeObservation(envs.VecEnv(envs.ClipAction(env, -2.0, 2.0), 64))
    obs, s = vec.reset(jax.random.PRNGKey(0), params)
    for t in range(30):
        obs, s, *_ = vec.step(jax.random.PRNGKey(t), s, jnp.full((64, 1), 1.0), params)
    # Normalised observations have roughly zero mean and unit scale once statistics settle.
    assert np.abs(np.asarray(obs).mean(0)).max() < 1.5
    assert float(s.count) == pytest.approx(64 * 31 + 1e-4, rel=1e-6)
    frozen = envs.NormalizeObservation(envs.VecEnv(env, 64), update=False)
    _, fs = frozen.reset(jax.random.PRNGKey(1), params)
    fs = envs.with_statistics(fs, s)
    _, fs2, *_ = frozen.step(jax.random.PRNGKey(2), fs, jnp.zeros((64, 1)), params)
    np.testing.assert_array_equal(fs2.mean, s.mean)


def test_clip_and_rescale_actions():
    class Echo(Counter):
        def step(self, key, state, action, params=None):
            obs, state, r, term, trunc, info = super().step(key, state, 0, params)
            return jnp.asarray(action, jnp.float32).reshape(1), state, r, term, trunc, info

    env = Echo()
    _, s = env.reset(jax.random.PRNGKey(0))
    obs, *_ = envs.ClipAction(env, -2.0, 2.0).step(jax.random.PRNGKey(0), s, jnp.array([5.0]))
    assert float(obs[0]) == 2.0
    obs, *_ = envs.RescaleAction(env, -2.0, 2.0).step(jax.random.PRNGKey(0), s, jnp.array([0.5]))
    assert float(obs[0]) == pytest.approx(1.0)
    obs, *_ = envs.RescaleAction(env, 0.0, 10.0).step(jax.random.PRNGKey(0), s, jnp.array([-1.0]))
    assert float(obs[0]) == pytest.approx(0.0)


def test_brax_env_follows_the_protocol():
    # inverted_pendulum: the cheapest Brax env to compile (~12 s here; hopper ~28 s, which
    # experiments/sac_td3_hopper.sh trains on), and one whose step returns Python floats for
    # reward and done, which the adapter must turn into arrays.
    env, params = envs.make("brax:inverted_pendulum")
    s = envs.spec(env, params)
    assert not s.discrete and s.num_actions == 1
    reset, step = jax.jit(env.reset), jax.jit(env.step)
    obs, state = reset(jax.random.PRNGKey(0), params)
    obs2, state, r, term, trunc, info = step(jax.random.PRNGKey(1), state, jnp.zeros(1), params)
    assert obs2.shape == obs.shape and "final_observation" in info and "episode_done" in info
    assert r.dtype == jnp.float32 and r.shape == () and float(r) == 1.0
    # Truncation at the episode limit is reported as truncation, not termination.
    short = params.replace(max_steps_in_episode=2)
    _, state = reset(jax.random.PRNGKey(0), short)
    _, state, _, term, trunc, _ = step(jax.random.PRNGKey(1), state, jnp.zeros(1), short)
    assert not bool(trunc) and not bool(term)
    _, state, _, term, trunc, info = step(jax.random.PRNGKey(2), state, jnp.zeros(1), short)
    assert bool(trunc) and not bool(term) and bool(info["episode_done"])


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_reset_state_is_typed_as_step_returns_it(env_id):
    # gymnax resets time to a Python 0 (weakly typed) and step returns an int32 array: a
    # function jitted over the state would compile twice, once per typing.
    env, params = envs.make(env_id)
    _, s0 = env.reset(jax.random.PRNGKey(0), params)
    action = jnp.zeros(envs.spec(env, params).num_actions) if env_id == "Pendulum-v1" else 0
    _, s1, *_ = env.step(jax.random.PRNGKey(1), s0, action, params)
    assert jax.tree.structure(s0) == jax.tree.structure(s1)
    assert [jax.typeof(x) for x in jax.tree.leaves(s0)] == [jax.typeof(x) for x in jax.tree.leaves(s1)]


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Breakout-MinAtar"])
def test_gymnax_envs_step_exactly_as_gymnax_does(env_id):
    """step_env under rlx's AutoReset gives gymnax's own numbers, resets included."""
    import gymnax

    ref, ref_p = gymnax.make(env_id)
    env, p = envs.AutoReset(envs.GymnaxNoReset(ref)), ref_p
    n = envs.spec(env, p).num_actions

    def rollout(step, reset, params):
        def body(carry, key):
            obs, s = carry
            k_act, k_step = jax.random.split(key)
            obs, s, r, term, trunc, info = step(k_step, s, jax.random.randint(k_act, (), 0, n), params)
            return (obs, s), (obs, r, term, trunc, info["final_observation"])
        return jax.lax.scan(body, reset(jax.random.PRNGKey(0), params), jax.random.split(jax.random.PRNGKey(1), 300))[1]

    ours = jax.jit(lambda: rollout(env.step, env.reset, p))()
    theirs = jax.jit(lambda: rollout(ref.step, ref.reset, ref_p))()
    assert bool(np.any(ours[2] | ours[3]))  # episodes ended and were reset along the way
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)


def test_presampled_steps_equal_keyed_steps():
    import gymnax

    env, p = gymnax.make("CartPole-v1")
    vec = envs.VecEnv(envs.EpisodeStats(envs.AutoReset(envs.GymnaxNoReset(env))), 3)
    _, s = vec.reset(jax.random.PRNGKey(0), p)
    step, ended = jax.jit(vec.step), 0
    for t in range(30):  # a constant action ends CartPole episodes within ~10 steps
        key, action = jax.random.PRNGKey(t), jnp.array([0, 1, 1])
        keyed = step(key, s, action, p)
        presampled = step(vec.presample(key, p), s, action, p)
        for a, b in zip(jax.tree.leaves(keyed), jax.tree.leaves(presampled)):
            np.testing.assert_array_equal(a, b)
        s, ended = keyed[1], ended + int(np.sum(keyed[3]))
    assert ended >= 2  # resets were taken from the draws
    many = vec.presample(key, p, num_steps=5)
    assert many.key.shape[:2] == (5, 3) and many.obs.shape == (5, 3, 4)
    # An env stack without AutoReset has no resets to draw: its draws are per-env step keys.
    bare = envs.VecEnv(Counter(), 2)
    draws = bare.presample(key, CounterParams(), num_steps=4)
    assert draws.obs is None and draws.key.shape[:2] == (4, 2)
    _, s = bare.reset(key, CounterParams())
    out = bare.step(jax.tree.map(lambda x: x[0], draws), s, jnp.ones(2, jnp.int32), CounterParams())
    np.testing.assert_array_equal(out[0], [[1.0], [1.0]])


class _NoisyCounter(Counter):
    """Counter whose observation adds U[0, 1) noise drawn from the step key (so step keys show)."""

    def step(self, key, state, action, params=None):
        obs, *rest = super().step(key, state, action, params)
        return (obs + jax.random.uniform(key), *rest)


def test_step_without_reset_is_step_until_the_episode_ends():
    vec = envs.VecEnv(envs.EpisodeStats(envs.AutoReset(_NoisyCounter())), 2)
    p = CounterParams(max_steps_in_episode=3)
    _, s = vec.reset(jax.random.PRNGKey(0), p)
    resetting, not_resetting, action = s, s, jnp.ones(2, jnp.int32)
    for t in range(4):
        a = vec.step(jax.random.PRNGKey(t), resetting, action, p)
        b = vec.step_without_reset(jax.random.PRNGKey(t), not_resetting, action, p)
        if t < 2:  # the same step keys, the same numbers
            for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
                np.testing.assert_array_equal(x, y)
        resetting, not_resetting = a[1], b[1]
        if t == 2:  # truncated: one env starts again from 0, the other stays where its episode ended
            assert bool(np.all(a[4])) and bool(np.all(b[4]))
            np.testing.assert_array_equal(np.floor(a[0][:, 0]), [0, 0])
            np.testing.assert_array_equal(np.floor(b[0][:, 0]), [3, 3])
            np.testing.assert_array_equal(a[5]["final_observation"], b[5]["final_observation"])
    np.testing.assert_array_equal(np.floor(b[0][:, 0]), [4, 4])


def test_evaluate_counts_first_episodes_and_never_resets_inside_its_loop(monkeypatch):
    import types

    from rlx import run

    resets = []
    original_reset = Counter.reset
    monkeypatch.setattr(Counter, "reset", lambda self, key, params=None: resets.append(1) or original_reset(self, key, params))
    agent = types.SimpleNamespace(eval_env=envs.EpisodeStats(envs.AutoReset(Counter())),
                                  env_params=CounterParams(max_steps_in_episode=3, reward=2.0),
                                  act=lambda policy, obs, key, deterministic: jnp.int32(1))
    mean, per_episode = jax.jit(lambda k: run.evaluate(agent, None, k, num_episodes=4, max_steps=7))(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(per_episode, [6.0] * 4)  # the first episode only: 3 steps × 2
    assert float(mean) == 6.0 and len(resets) == 1  # the episodes' start; the loop draws none

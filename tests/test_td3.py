"""TD3: learning, determinism, vmap equivalence, delayed actor updates, bad input."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import envs
from rlx.agents import td3
from rlx.config import ConfigError
from rlx.run import make_train


def test_pendulum_20k_two_seeds_learns():
    # 64×64 networks and batch 64 keep the test cheap; untrained policies score about −1200 to −1500.
    # Measured medians of seed pairs 0, 1, 2: −157, −178, −123 at batch 64; −154, −175, −124 at 256.
    env, params = envs.make("Pendulum-v1")
    agent = td3.make(td3.TD3Config(total_timesteps=20_000, hidden=(64, 64), batch_size=64, buffer_size=20_000), env,
                     params)
    train = jax.jit(jax.vmap(make_train(agent, eval_every=agent.num_iterations, eval_episodes=16),
                             in_axes=(0, None)))
    _, metrics = train(jax.random.split(jax.random.PRNGKey(0), 2), agent.default_hparams())
    final = np.asarray(metrics["eval/return"])[:, -1]
    assert np.median(final) >= -300, final


SMALL = dict(total_timesteps=400, learning_starts=100, batch_size=32, hidden=(16,), num_envs=2, gradient_steps=3)


@pytest.fixture(scope="module")
def short():
    env, params = envs.make("Pendulum-v1")
    agent = td3.make(td3.TD3Config(**SMALL), env, params)
    return agent, jax.jit(make_train(agent, eval_episodes=0))


def test_same_key_gives_bitwise_equal_parameters(short):
    agent, train = short
    hp = agent.default_hparams()
    s1, m1 = train(jax.random.PRNGKey(3), hp)
    s2, m2 = train(jax.random.PRNGKey(3), hp)
    for a, b in zip(jax.tree.leaves((s1.params, s1.target)), jax.tree.leaves((s2.params, s2.target))):
        np.testing.assert_array_equal(a, b)
    s3, _ = train(jax.random.PRNGKey(4), hp)
    assert not np.array_equal(jax.tree.leaves(s1.params)[0], jax.tree.leaves(s3.params)[0])


def test_vmapped_run_equals_single_runs_over_seeds_and_hparams(short):
    agent, train = short
    hp = agent.default_hparams()
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    noise = jnp.array([0.1, 0.2, 0.4])
    hp_batch = jax.tree.map(lambda x: jnp.broadcast_to(x, (3,) + jnp.shape(x)), hp).replace(target_noise=noise)
    states, metrics = jax.jit(jax.vmap(make_train(agent, eval_episodes=0)))(keys, hp_batch)
    for i in range(3):
        s, m = train(keys[i], hp.replace(target_noise=noise[i]))
        for a, b in zip(jax.tree.leaves(s.params), jax.tree.leaves(states.params)):
            np.testing.assert_allclose(a, b[i], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(m["loss/critic"], metrics["loss/critic"][i], rtol=1e-3, atol=1e-4)


def test_actor_and_targets_update_every_policy_delay_steps():
    env, params = envs.make("Pendulum-v1")
    agent = td3.make(td3.TD3Config(**{**SMALL, "gradient_steps": 1, "learning_starts": 32, "num_envs": 1}), env,
                     params)
    hp = agent.default_hparams()
    state = jax.jit(agent.init)(jax.random.PRNGKey(0), hp)
    update = jax.jit(agent.update)
    for _ in range(32):  # warm-up: nothing learns
        state, _ = update(state, hp)
    leaf = lambda tree: np.asarray(jax.tree.leaves(tree)[0])
    actor0, critic0, target0 = leaf(state.params["actor"]), leaf(state.params["critic"]), leaf(state.target)
    state, m1 = update(state, hp)  # gradient step 1: critic only
    np.testing.assert_array_equal(leaf(state.params["actor"]), actor0)
    np.testing.assert_array_equal(leaf(state.target), target0)
    assert not np.array_equal(leaf(state.params["critic"]), critic0)
    assert float(m1["actor_updates"]) == 0
    state, m2 = update(state, hp)  # gradient step 2: actor and targets too
    assert not np.array_equal(leaf(state.params["actor"]), actor0)
    assert not np.array_equal(leaf(state.target), target0)
    assert float(m2["actor_updates"]) == 1 and float(m2["loss/actor"]) != 0


def test_discrete_env_is_refused():
    env, params = envs.make("CartPole-v1")
    with pytest.raises(ConfigError, match="TD3Config: TD3 needs a continuous"):
        td3.make(td3.TD3Config(), env, params)


def test_batch_larger_than_warmup_buffer_is_refused():
    env, params = envs.make("Pendulum-v1")
    with pytest.raises(ConfigError, match=r"TD3Config.batch_size=256 .*= 100"):
        td3.make(td3.TD3Config(batch_size=256, learning_starts=100), env, params)


def test_bad_policy_delay():
    env, params = envs.make("Pendulum-v1")
    with pytest.raises(ConfigError, match="TD3Config.policy_delay=0"):
        td3.make(td3.TD3Config(policy_delay=0), env, params)


def _eqns(jaxpr):
    """Every equation of a jaxpr, those of its sub-jaxprs (loop bodies, branches, calls) included."""
    for eqn in getattr(jaxpr, "jaxpr", jaxpr).eqns:
        yield eqn
        for value in eqn.params.values():
            for sub in value if isinstance(value, (list, tuple)) else [value]:
                if hasattr(getattr(sub, "jaxpr", sub), "eqns"):
                    yield from _eqns(sub)


def _loops_and_branches(jaxpr):
    """(conds, while loops whose predicate is one scalar, while loops with a per-run predicate)."""
    eqns = list(_eqns(jaxpr))
    whiles = [e.params["cond_jaxpr"].out_avals[0].shape for e in eqns if e.primitive.name == "while"]
    return (sum(e.primitive.name == "cond" for e in eqns), sum(s == () for s in whiles),
            sum(s != () for s in whiles))


def test_warmup_and_delayed_actor_stay_real_branches_under_vmap():
    """The run loop hands update_at its shared iteration index, so vmapping runs keeps the warm-up
    (a while loop of a shared trip count, ``critics.learn_unless``) and TD3's delayed actor update
    (a cond) real branches. A per-run counter makes their predicates per-run data: vmap then runs
    the skipped work for every run and masks it."""
    from rlx.agents import sac
    from rlx.run import make_chunks

    env, ep = envs.make("Pendulum-v1")
    small = dict(total_timesteps=400, learning_starts=100, batch_size=16, hidden=(8, 8), buffer_size=500)
    # evaluation (+ TD3's delayed actor): conds; the warm-up: a while loop
    for module, config, conds in ((td3, td3.TD3Config(**small), 2), (sac, sac.SACConfig(**small), 1)):
        agent = module.make(config, env, ep)
        prog = make_chunks(agent, eval_every=400)
        hp = jax.tree.map(lambda x: jnp.stack([x, x]), agent.default_hparams())
        # Traced only, never compiled: the shapes of a batch of 2 runs' carry are all it needs.
        carry = jax.eval_shape(jax.vmap(prog.init, in_axes=(0, 0, None)), jax.random.split(jax.random.PRNGKey(0), 2),
                               hp, None)
        jaxpr = jax.make_jaxpr(jax.vmap(lambda c, h: prog.advance(c, h, 0, 2)))(carry, hp)
        assert _loops_and_branches(jaxpr) == (conds, 1, 0), module.__name__
        # the check can fail: with the state's own (per-run) counter the conds become selects and
        # the loop's predicate is per-run
        per_run = jax.make_jaxpr(jax.vmap(agent.update))(carry["state"], hp)
        assert _loops_and_branches(per_run) == (0, 0, 1), module.__name__
        # and update_at at the state's own counter is update: the very same program
        s0 = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), carry["state"])
        one = agent.default_hparams()
        plain = jax.make_jaxpr(agent.update)(s0, one)
        at_own_counter = jax.make_jaxpr(lambda s, h: agent.update_at(s, h, s.iteration))(s0, one)
        assert str(plain) == str(at_own_counter), module.__name__
        at_zero = jax.make_jaxpr(lambda s, h: agent.update_at(s, h, jnp.int32(0)))(s0, one)
        assert str(plain) != str(at_zero)  # the comparison can tell two programs apart

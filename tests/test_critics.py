"""The off-policy core shared by SAC, TD3 and the offline agents: rlx.critics."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import critics


def _step(state, x):
    """A stand-in learner step: the state accumulates x, the metric is the new state."""
    state = {"w": state["w"] + x, "n": state["n"] + 1}
    return state, {"m": state["w"].sum()}


@pytest.mark.parametrize("in_place", [True, False])
def test_learn_unless_runs_every_step_or_none(in_place, monkeypatch):
    monkeypatch.setattr(critics, "IN_PLACE_LOOPS", in_place)
    state = {"w": jnp.zeros(2), "n": jnp.int32(0)}
    xs = jnp.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    learn = jax.jit(lambda skip: critics.learn_unless(skip, _step, state, xs, ("m",)))

    new, sums = learn(False)
    np.testing.assert_array_equal(new["w"], [9.0, 12.0])
    assert int(new["n"]) == 3
    np.testing.assert_allclose(sums["m"], 3.0 + 10.0 + 21.0)  # the metric summed over the steps

    same, zeros = learn(True)  # warm-up: nothing learned, zero metrics
    np.testing.assert_array_equal(same["w"], [0.0, 0.0])
    assert int(same["n"]) == 0 and float(zeros["m"]) == 0.0


def test_learn_unless_with_per_run_skips_under_vmap():
    """A per-run skip under vmap: each run learns or not by its own flag."""
    state = {"w": jnp.zeros((2, 1)), "n": jnp.zeros(2, jnp.int32)}
    xs = jnp.ones((4, 1))
    new, sums = jax.vmap(lambda s, skip: critics.learn_unless(skip, _step, s, xs, ("m",)))(
        state, jnp.array([True, False]))
    np.testing.assert_array_equal(new["w"][:, 0], [0.0, 4.0])
    np.testing.assert_array_equal(new["n"], [0, 4])
    np.testing.assert_array_equal(sums["m"], [0.0, 1.0 + 2.0 + 3.0 + 4.0])


def test_polyak_moves_the_target_by_tau():
    target, online = {"a": jnp.array([0.0, 10.0])}, {"a": jnp.array([10.0, 10.0])}
    np.testing.assert_allclose(critics.polyak(target, online, 0.1)["a"], [1.0, 10.0])


def test_zero_after_is_zero_and_depends_on_every_leaf(monkeypatch):
    tree = {"a": jnp.ones((3, 2)), "b": [jnp.full(4, 2.0), jnp.float32(5.0)]}
    assert float(critics.zero_after(tree)) == 0.0
    # a data dependency on each leaf: a NaN at the element it reads, in any leaf, comes through
    for poisoned in (dict(tree, a=tree["a"].at[0, 0].set(jnp.nan)),
                     dict(tree, b=[tree["b"][0].at[0].set(jnp.nan), tree["b"][1]]),
                     dict(tree, b=[tree["b"][0], jnp.float32(jnp.nan)])):
        assert np.isnan(critics.zero_after(poisoned))
    monkeypatch.setattr(critics, "ORDERED_WRITES", False)  # the A/B switch: a constant
    assert float(critics.zero_after(dict(tree, a=tree["a"].at[0, 0].set(jnp.nan)))) == 0.0

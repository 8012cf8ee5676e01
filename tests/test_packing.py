import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import packing


def _tree():
    k = jax.random.split(jax.random.PRNGKey(0), 3)
    return {"x": jnp.arange(6.0).reshape(2, 3), "t": jnp.int32(7), "done": jnp.array([True, False]),
            "key": jax.random.key_data(jax.random.PRNGKey(5)), "nested": (jnp.float32(-1.5), jax.random.normal(k[0], (4,)),
                                                                        jnp.arange(3, dtype=jnp.int32))}


def test_pack_groups_leaves_by_dtype_and_unpacks_bitwise():
    tree = _tree()
    pack, unpack = packing.packer(tree)
    flat = pack(tree)
    assert sorted(flat) == ["bool", "float32", "int32", "uint32"]
    assert flat["float32"].shape == (6 + 1 + 4,) and flat["int32"].shape == (1 + 3,)
    # Tree order (dict keys sorted) within a dtype: nested[0], nested[1] (4 values), then x.
    np.testing.assert_array_equal(flat["float32"][0], -1.5)
    np.testing.assert_array_equal(flat["float32"][5:], [0, 1, 2, 3, 4, 5])
    back = unpack(flat)
    assert jax.tree.structure(back) == jax.tree.structure(tree)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(tree)):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


def test_packer_accepts_shape_structs():
    tree = _tree()
    pack, unpack = packing.packer(jax.eval_shape(lambda: tree))
    np.testing.assert_array_equal(unpack(pack(tree))["nested"][1], tree["nested"][1])


def _step(carry, x):
    pos, vel, count, alive = carry
    vel = vel + 0.1 * x
    pos = pos + vel
    alive = alive & (jnp.abs(pos) < 2.0)
    return (pos, vel, count + alive.astype(jnp.int32), alive), {"pos": pos, "alive": alive, "n": count.sum()}


def test_scan_equals_lax_scan_bitwise():
    xs = jax.random.normal(jax.random.PRNGKey(1), (50, 5))
    carry = (jnp.zeros(5), jnp.ones(5) * 0.05, jnp.zeros(5, jnp.int32), jnp.ones(5, bool))
    ref = jax.jit(lambda c, xs: jax.lax.scan(_step, c, xs))(carry, xs)
    got = jax.jit(lambda c, xs: packing.scan(_step, c, xs))(carry, xs)
    assert jax.tree.structure(got) == jax.tree.structure(ref)
    assert not bool(ref[0][3].all())  # some "episodes" ended, so the bool carry changed
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(ref)):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


def test_scan_carries_one_buffer_per_dtype():
    # Like CartPole's state: five float fields and a step counter; three float outputs.
    def step(carry, x):
        *fields, t = carry
        fields = [f + x for f in fields]
        return (*fields, t + 1), (fields[0], fields[1] * 2, fields[2] - x)

    carry = tuple(jnp.zeros(4) for _ in range(5)) + (jnp.zeros(4, jnp.int32),)
    xs = jnp.ones((3, 4))

    def body_arity(loop):
        """(inputs, outputs) of the scan's body: consts + carry + xs in, carry + ys out."""
        eqns = [e for e in jax.make_jaxpr(loop)(carry, xs).eqns if e.primitive.name == "scan"]
        assert len(eqns) == 1
        body = eqns[0].params["jaxpr"]
        return len(body.in_avals), len(body.out_avals)

    plain_in, plain_out = body_arity(lambda c, xs: jax.lax.scan(step, c, xs))
    packed_in, packed_out = body_arity(lambda c, xs: packing.scan(step, c, xs))
    assert plain_in - packed_in == 6 - 2  # carry: 6 leaves -> float32 + int32
    assert plain_out - packed_out == (6 - 2) + (3 - 1)  # and the outputs: 3 leaves -> float32


def test_scan_without_outputs():
    carry, ys = packing.scan(lambda c, x: (c + x, None), jnp.float32(0.0), jnp.arange(4.0))
    assert ys is None and float(carry) == 6.0


@pytest.mark.parametrize("bad", [jnp.zeros(3), {"a": jnp.zeros(2)}])
def test_pack_rejects_a_tree_of_another_structure(bad):
    pack, _ = packing.packer({"a": jnp.zeros(2), "b": jnp.zeros(2)})
    with pytest.raises(ValueError):
        pack(bad)

"""Loops that carry a few buffers, not one per leaf: a pytree packed into one array per dtype.

    pack, unpack = packing.packer(example_tree)
    flat = pack(tree)                                   # {dtype name: 1-D array}
    tree = unpack(flat)                                 # the same leaves, bitwise
    carry, ys = packing.scan(step, carry, xs)           # lax.scan, packed inside

Why: XLA:CPU gives every loop-carried buffer its own copy and every small elementwise op
on it its own kernel, and in a small-env rollout (CartPole's state is five [num_envs]
fields, plus the episode statistics) the number of kernels per step, not arithmetic, sets
the speed. Packed, PPO's CartPole rollout step runs 22 kernels instead of 37 (XLA's
optimised HLO, jax 0.10, gymnax under rlx's AutoReset); experiments/results/ab_rollout.json
has the measured speed. Leaves keep their dtype (no float round trip for integer or key
data), so the numbers are bitwise those of the unpacked loop.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def packer(example):
    """``(pack, unpack)`` for trees with ``example``'s structure, shapes and dtypes.

    ``example``'s leaves may be arrays or ``jax.ShapeDtypeStruct``s. ``pack(tree)`` returns
    ``{dtype name: 1-D array}`` (leaves raveled and concatenated in tree order);
    ``unpack`` inverts it.
    """
    leaves, treedef = jax.tree.flatten(example)
    shapes = [tuple(x.shape) if hasattr(x, "shape") else () for x in leaves]
    dtypes = [x.dtype if hasattr(x, "dtype") else jnp.asarray(x).dtype for x in leaves]
    groups: dict[str, list[int]] = {}
    for i, dtype in enumerate(dtypes):
        groups.setdefault(str(dtype), []).append(i)

    def pack(tree):
        xs = treedef.flatten_up_to(tree)
        return {name: jnp.concatenate([jnp.ravel(xs[i]) for i in idx]) for name, idx in groups.items()}

    def unpack(flat):
        out = [None] * len(leaves)
        for name, idx in groups.items():
            offset = 0
            for i in idx:
                size = math.prod(shapes[i])
                out[i] = flat[name][offset:offset + size].reshape(shapes[i])
                offset += size
        return treedef.unflatten(out)

    return pack, unpack


def scan(step, carry, xs):
    """``jax.lax.scan(step, carry, xs)``, with the carry and each step's outputs packed per dtype.

    Same results bitwise. ``xs`` must have a leading axis (no ``length=`` form); the loop
    runs over it. The outputs are unpacked once, after the loop, with their leading [T] axis.
    """
    x0 = jax.tree.map(lambda x: x[0], xs)
    _, y_example = jax.eval_shape(step, carry, x0)
    pack_carry, unpack_carry = packer(carry)
    pack_y, unpack_y = packer(y_example)

    def packed_step(packed, x):
        new_carry, y = step(unpack_carry(packed), x)
        return pack_carry(new_carry), pack_y(y)

    packed, ys = jax.lax.scan(packed_step, pack_carry(carry), xs)
    return unpack_carry(packed), jax.vmap(unpack_y)(ys) if ys else unpack_y(ys)

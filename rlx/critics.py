"""Q-function ensembles and target networks, shared by SAC, TD3 and the offline agents.

``QEnsemble(num=2)`` is the twin critic: the two Q networks are one module whose weights
carry a leading ensemble axis (``flax.linen.vmap``), so every layer of both critics is a
single batched matmul instead of two separate ones.

    q = QEnsemble((256, 256))
    params = q.init(key, obs, action)
    values = q.apply(params, obs, action)          # [num, B]
    target = polyak(target, params, tau=0.005)     # θ̄ ← θ̄ + τ (θ − θ̄)

It also holds what keeps the learners' updates in place: ``learn_unless`` (the learning phase, skipped during
warm-up, as a loop) and ``zero_after`` (every parameter write after every gradient).
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from rlx import nets


class QNet(nn.Module):
    """Q(s, a): MLP on the concatenated observation and action → scalar."""

    hidden: Sequence[int]
    activation: str = "relu"

    @nn.compact
    def __call__(self, obs, action):
        obs = obs.reshape(obs.shape[: action.ndim - 1] + (-1,))  # flatten image-like observations
        x = jnp.concatenate([obs, action.astype(obs.dtype)], axis=-1)
        x = nets.MLP(self.hidden, self.activation)(x)
        return nets.Dense(1)(x)[..., 0]


class QEnsemble(nn.Module):
    """``num`` independent Q networks evaluated as one: returns Q values [num, ...batch]."""

    hidden: Sequence[int]
    activation: str = "relu"
    num: int = 2

    @nn.compact
    def __call__(self, obs, action):
        ensemble = nn.vmap(QNet, variable_axes={"params": 0}, split_rngs={"params": True}, in_axes=0,
                           out_axes=0, axis_size=self.num)
        # Every member gets its own copy of the input: its first layer is then a batched matmul
        # whose output is already [num, B, width] (with in_axes=None XLA wrote [B, num, width]
        # and transposed it before every later layer: ~2% of a 256×256 SAC update).
        bcast = lambda x: jnp.broadcast_to(x, (self.num,) + x.shape)
        return ensemble(self.hidden, self.activation, name="q")(bcast(obs), bcast(action))


def polyak(target, online, tau):
    """Soft target update θ̄ ← (1 − τ) θ̄ + τ θ on matching pytrees; τ may be a traced array."""
    return jax.tree.map(lambda t, o: t + tau * (o - t), target, online)


# Switches for experiments/bench/ab_in_place_loops.py. False: learn_unless branches with
# lax.cond; zero_after is a constant 0 (no ordering).
IN_PLACE_LOOPS = True
ORDERED_WRITES = True


def zero_after(tree):
    """0 × (one element of every leaf of ``tree``): a zero that exists only once all of ``tree`` does.

    Add it to the learning rates and every parameter write waits for every gradient, hence for
    every read of the old weights. Without that, XLA cannot prove that a weight's last read
    (say, the actor's pass over s' for the TD target, which no actor gradient depends on)
    comes before its write, so it copies the weight each update before updating it. Ordered,
    the optimiser's elementwise passes also no longer run beside the matmul library's kernels,
    which use both cores; that is probably most of the gain, since TD3, whose program had no
    such copies, gains too. Measured (ab_in_place_loops.py, 9 rounds, "loop_ordered" against
    "cond"): SAC ×1.171 (9 of 9 rounds; ×1.035 without the ordering), TD3 ×1.040 (7 of 9);
    IQL, against no ordering, ×1.052 (9 of 9; ab_ordered_writes_iql.json), the same numbers
    bitwise. The other offline agents do not use it yet (not measured). The multiply is not folded away (0 × NaN is NaN), so a NaN gradient anywhere reaches every
    parameter; training is lost then anyway.
    """
    if not ORDERED_WRITES:
        return jnp.float32(0.0)
    return 0.0 * sum(leaf.ravel()[0] for leaf in jax.tree.leaves(tree))


def learn_unless(skip, step, state, xs, metric_names):
    """``step(state, x)`` for each x of ``xs`` (leading axis) unless ``skip``: the state and the
    sums of the step's metrics (zeros when skipped).

    The off-policy agents' learning phase, skipped during warm-up. It is a while loop of
    ``len(xs)`` trips or of none, not a ``lax.cond`` around the loop: a conditional's results
    cannot share buffers with its operands, so XLA copied every parameter, Adam moment and
    target network out of the cond on every iteration, learning or not (seven copies of
    256×256-class arrays in the SAC bench), where a while loop updates its carry in place.
    Measured (experiments/bench/ab_in_place_loops.py, 9 rounds, "loop" against "cond"): SAC
    ×1.035 (faster in 8 of 9 rounds), TD3 ×1.020 (5 of 9). Not a rule for every cond: TD3's
    delayed actor update written as a loop of one trip or none ran about 7% slower in an ad-hoc
    5-round A/B, so it stays a cond. Under ``vmap`` a per-run ``skip`` makes vmap run the steps
    for every run and keep the results where they are due (as it does with a cond); a shared
    one stays a real branch.
    """
    num_steps = jax.tree.leaves(xs)[0].shape[0]

    def body(i, carry):
        state, sums = carry
        state, metrics = step(state, jax.tree.map(lambda x: x[i], xs))
        return state, {k: sums[k] + metrics[k] for k in metric_names}

    carry = (state, {k: jnp.float32(0.0) for k in metric_names})
    if not IN_PLACE_LOOPS:
        return jax.lax.cond(skip, lambda c: c, lambda c: jax.lax.fori_loop(0, num_steps, body, c), carry)
    return jax.lax.fori_loop(0, jnp.where(skip, 0, num_steps), body, carry)

"""rlx.shuffle.permutation: a uniform random permutation from one sorted array of packed keys."""
import collections

import jax
import numpy as np
import pytest

from rlx.shuffle import permutation


@pytest.mark.parametrize("n", [1, 2, 7, 512, 1000])
def test_is_a_permutation_and_a_pure_function_of_the_key(n):
    p = np.asarray(jax.jit(permutation, static_argnums=1)(jax.random.PRNGKey(n), n))
    assert p.dtype == np.int32
    np.testing.assert_array_equal(np.sort(p), np.arange(n))
    np.testing.assert_array_equal(p, permutation(jax.random.PRNGKey(n), n))
    keys = jax.random.split(jax.random.PRNGKey(1), 3)  # vmapped: row i is the permutation of key i
    np.testing.assert_array_equal(jax.vmap(lambda k: permutation(k, n))(keys), [permutation(k, n) for k in keys])


def test_every_permutation_of_three_is_equally_likely():
    draws = np.asarray(jax.jit(jax.vmap(lambda k: permutation(k, 3)))(jax.random.split(jax.random.PRNGKey(0), 60_000)))
    counts = collections.Counter(map(tuple, draws))
    assert len(counts) == 6
    # 10,000 expected each; the binomial sd is ~91, so ±400 fails only for a biased shuffle.
    assert all(abs(c - 10_000) < 400 for c in counts.values()), counts


def test_large_n_has_no_runs_left_by_ties_between_keys():
    # n = 2^18 leaves 14 random bits per key: one round would leave the ~16 indices that share a
    # key value in ascending order (an ascent fraction of 0.94, measured); 4 rounds break them.
    p = np.asarray(jax.jit(permutation, static_argnums=1)(jax.random.PRNGKey(1), 2 ** 18))
    assert abs(np.mean(np.diff(p) > 0) - 0.5) < 0.005  # uniform: 0.5 ± 0.0006 (sd)


def test_bad_size_is_a_clear_error():
    with pytest.raises(ValueError, match="positive int"):
        permutation(jax.random.PRNGKey(0), 0)

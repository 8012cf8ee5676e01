"""Offline AWAC on the small generated Pendulum-v1 medium dataset, and its weights by hand."""
import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import data, envs, offline_cli
from rlx.agents import awac
from rlx.agents.iql import GaussianActor, gaussian_log_prob
from rlx.config import ConfigError
from rlx.run import make_train


@pytest.mark.slow  # out of CI; at full size in experiments/offline.py (5 seeds on every Pendulum-v1 tier)
def test_awac_beats_its_medium_data(medium):
    # Defaults (λ = 1, batch-softmax weights, lr 3e-4, batch 256); 128×128 networks and 5k steps for time.
    # Measured (mean of the last 3 evaluations, 64 episodes each): seed 0 scores 75, seed 1 78; the data 15.
    ds, env, params = medium
    agent = awac.make(awac.AWACConfig(total_steps=5_000, steps_per_iteration=1_000, hidden=(128, 128)),
                      ds, env, params)
    _, metrics = jax.jit(make_train(agent, eval_every=1, eval_episodes=64))(jax.random.PRNGKey(0),
                                                                           agent.default_hparams())
    data_score = ds.normalized_score(ds.episode_returns()).mean()
    score = ds.normalized_score(metrics["eval/return"][-3:]).mean()
    print(f"awac score {score:.1f}, data {data_score:.1f}, evals {ds.normalized_score(metrics['eval/return'])}")
    assert 0 < data_score < 60, data_score  # the data really is medium quality
    assert score >= data_score, (score, data_score)
    assert np.all(np.isfinite(metrics["loss/critic"])) and np.all(metrics["std"] > 0)


def test_awac_vmap_equals_separate_runs_and_is_deterministic(medium):
    ds, env, params = medium
    cfg = awac.AWACConfig(total_steps=40, steps_per_iteration=20, hidden=(32, 32), num_action_samples=2)
    agent = awac.make(cfg, ds, env, params)
    train = jax.jit(make_train(agent, eval_episodes=0))
    hp = agent.default_hparams()
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    states, _ = jax.jit(jax.vmap(make_train(agent, eval_episodes=0), in_axes=(0, None)))(keys, hp)
    for i in range(3):
        s, _ = train(keys[i], hp)
        for a, b in zip(jax.tree.leaves((s.params, s.target_critic)),
                        jax.tree.leaves((states.params, states.target_critic))):
            np.testing.assert_allclose(a, b[i], rtol=1e-5, atol=1e-6)
    s1, _ = train(keys[0], hp)
    s2, _ = train(keys[0], hp)
    for a, b in zip(jax.tree.leaves(s1), jax.tree.leaves(s2)):
        np.testing.assert_array_equal(a, b)


def test_awac_advantage_and_weights_by_hand():
    # Two critics, three states; Q at the data action and at K = 2 policy actions.
    q_data = jnp.array([[1.0, 5.0, -2.0],
                        [3.0, 4.0, -1.0]])                    # min over critics: [1, 4, −2]
    q_pi = jnp.array([[[0.0, 6.0, -3.0], [2.0, 5.0, -4.0]],    # sample 1, min: [0, 5, −4]
                      [[2.0, 3.0, -2.0], [1.0, 7.0, -2.0]]])   # sample 2, min: [1, 3, −2]
    adv = awac.advantage(q_data, q_pi)                         # [1, 4, −2] − mean([0, 5, −4], [1, 3, −2])
    np.testing.assert_allclose(adv, [0.5, 0.0, 1.0])

    a = jnp.array([0.0, math.log(2.0), -math.log(2.0)])  # exp(A) = 1, 2, 1/2
    w = awac.advantage_weights(a, temperature=1.0, max_weight=100.0, weights="batch_softmax")
    np.testing.assert_allclose(w, 3 * np.array([1.0, 2.0, 0.5]) / 3.5, rtol=1e-6)  # B·softmax: mean weight 1
    np.testing.assert_allclose(float(w.mean()), 1.0, rtol=1e-6)
    w = awac.advantage_weights(a, temperature=2.0, max_weight=100.0, weights="batch_softmax")  # exp(A/2)
    np.testing.assert_allclose(w, 3 * np.array([1.0, 2 ** 0.5, 2 ** -0.5]) / (1 + 2 ** 0.5 + 2 ** -0.5), rtol=1e-6)
    w = awac.advantage_weights(a + 100.0, temperature=1.0, max_weight=100.0, weights="batch_softmax")  # shift-free
    np.testing.assert_allclose(w, 3 * np.array([1.0, 2.0, 0.5]) / 3.5, rtol=1e-5)
    w = awac.advantage_weights(a, temperature=1.0, max_weight=1.5, weights="clipped_exp")
    np.testing.assert_allclose(w, [1.0, 1.5, 0.5], rtol=1e-6)  # min(exp(A/λ), max_weight)
    w = awac.advantage_weights(a, temperature=0.5, max_weight=100.0, weights="clipped_exp")
    np.testing.assert_allclose(w, [1.0, 4.0, 0.25], rtol=1e-6)
    g = jax.grad(lambda x: awac.advantage_weights(x, temperature=1.0, max_weight=9.0).sum())(a)
    np.testing.assert_array_equal(g, 0.0)  # the weights are constants for the actor


def test_awac_actor_loss_is_weighted_log_likelihood(medium):
    # At a huge temperature every batch-softmax weight is 1: the actor loss is −mean log π(a|s), by hand.
    ds, env, params = medium
    agent = awac.make(awac.AWACConfig(total_steps=10, steps_per_iteration=10, hidden=(16, 16)), ds, env, params)
    hp = agent.default_hparams()
    state = agent.init(jax.random.PRNGKey(0), hp)
    batch = data.prepare(ds, env, params).data.sample(jax.random.PRNGKey(1), 64)
    losses = jax.jit(agent.update.losses)
    _, m = losses(state.params, state.target_critic, hp.replace(temperature=jnp.float32(1e9)), batch,
                  jax.random.PRNGKey(2))
    mean, log_std = GaussianActor(1, (16, 16)).apply(state.params["actor"], batch.obs)
    log_prob = gaussian_log_prob(mean, log_std, batch.action)
    np.testing.assert_allclose(float(m["loss/actor"]), float(-log_prob.mean()), rtol=1e-5)
    # At a tiny temperature all the weight, B, goes to the largest advantage: the loss is −log π(a_j|s_j)
    # of one transition j of the batch.
    _, m = losses(state.params, state.target_critic, hp.replace(temperature=jnp.float32(1e-9)), batch,
                  jax.random.PRNGKey(2))
    assert float(m["weight_max"]) == pytest.approx(64.0, rel=1e-4)
    assert np.min(np.abs(float(m["loss/actor"]) + np.asarray(log_prob))) < 1e-4
    assert not np.isclose(float(m["loss/actor"]), -float(log_prob.mean()), rtol=1e-3)


def test_awac_rejects_bad_config(medium):
    ds, env, params = medium
    cart, cart_params = envs.make("CartPole-v1")
    with pytest.raises(ConfigError, match="continuous action space"):
        awac.make(awac.AWACConfig(), ds, cart, cart_params)
    with pytest.raises(ConfigError, match="reward_scale='linear' is not accepted; choose one of: none, episode_range"):
        awac.make(awac.AWACConfig(reward_scale="linear"), ds, env, params)
    with pytest.raises(ConfigError, match="weights='softmax' is not accepted; choose one of: batch_softmax, "
                                          "clipped_exp"):
        awac.make(awac.AWACConfig(weights="softmax"), ds, env, params)
    with pytest.raises(ConfigError, match=r"AWACConfig\.num_action_samples=0: must be a positive integer"):
        awac.make(awac.AWACConfig(num_action_samples=0), ds, env, params)
    with pytest.raises(ConfigError, match=r"AWACConfig\.batch_size=-1: must be a positive integer"):
        awac.make(awac.AWACConfig(batch_size=-1), ds, env, params)
    with pytest.raises(ConfigError, match="smaller than one iteration"):
        awac.make(awac.AWACConfig(total_steps=10, steps_per_iteration=20), ds, env, params)
    with pytest.raises(ConfigError, match="must be an AWACConfig"):
        awac.make(dataclasses.make_dataclass("Other", [])(), ds, env, params)
    bad = ds.replace(action=jnp.zeros((len(ds), 3)))
    with pytest.raises(data.DatasetError, match="action shape"):
        awac.make(awac.AWACConfig(), bad, env, params)


def test_awac_module_has_the_cli_interface():
    hp = awac.default_hparams()
    for f in dataclasses.fields(hp):
        leaf = getattr(hp, f.name)
        assert isinstance(leaf, jax.Array) and leaf.shape == () and leaf.dtype == jnp.float32, f.name
        assert f.name in awac.HELP, f.name
    for f in dataclasses.fields(awac.Config):
        assert f.name in awac.HELP, f.name
    assert awac.Config is awac.AWACConfig and awac.Hparams is awac.AWACHparams
    args = offline_cli.build_parser("awac", awac).parse_args(
        ["--dataset", "x.npz", "--temperature", "0.3,1,3", "--weights", "clipped_exp"])
    assert args.temperature == [0.3, 1.0, 3.0] and args.weights == "clipped_exp"

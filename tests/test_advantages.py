import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import envs, nets
from rlx.advantages import gae
from rlx.agents import ppo
from rlx.run import make_train
from toy_envs import Counter, CounterParams

REWARD = jnp.array([1.0, 1.0, 1.0])
VALUE = jnp.array([0.5, 1.0, 2.0])
# next_value[t] = V(s'_t); at t=1 the episode ended, so it is V(final obs) = 4, not VALUE[2].
NEXT_VALUE = jnp.array([1.0, 4.0, 3.0])


def test_gae_bootstraps_through_truncation():
    term = jnp.array([False, False, False])
    trunc = jnp.array([False, True, False])
    adv, ret = gae(REWARD, VALUE, NEXT_VALUE, term, trunc, gamma=0.5, lam=1.0)
    # δ = [1 + .5·1 − .5, 1 + .5·4 − 1, 1 + .5·3 − 2] = [1, 2, .5]
    # A2 = .5; A1 = δ1 = 2 (trace cut at the episode end); A0 = 1 + .5·2 = 2
    np.testing.assert_allclose(adv, [2.0, 2.0, 0.5])
    np.testing.assert_allclose(ret, [2.5, 3.0, 2.5])


def test_gae_does_not_bootstrap_through_termination():
    term = jnp.array([False, True, False])
    trunc = jnp.array([False, False, False])
    adv, _ = gae(REWARD, VALUE, NEXT_VALUE, term, trunc, gamma=0.5, lam=1.0)
    # δ1 = 1 + 0 − 1 = 0; A1 = 0; A0 = 1 + .5·0 = 1
    np.testing.assert_allclose(adv, [1.0, 0.0, 0.5])


def test_gae_lambda_mixes_td_errors():
    term = trunc = jnp.zeros(3, bool)
    adv, _ = gae(REWARD, VALUE, jnp.array([1.0, 2.0, 3.0]), term, trunc, gamma=0.5, lam=0.5)
    # δ = [1, 1, .5]; A2 = .5; A1 = 1 + .25·.5 = 1.125; A0 = 1 + .25·1.125 = 1.28125
    np.testing.assert_allclose(adv, [1.28125, 1.125, 0.5])


@pytest.fixture(scope="module")
def learned_values():
    """Train PPO's critic on a 3-step episode that is either truncated or terminated.

    Reward is 1 per step whatever the action. With truncation, the value keeps bootstrapping
    and heads for 1/(1−γ) = 10; with termination it is at most 1 + γ + γ² = 2.71.
    """
    env = envs.EpisodeStats(envs.AutoReset(Counter()))
    cfg = ppo.PPOConfig(total_timesteps=300 * 32, num_envs=4, num_steps=8, num_minibatches=1, hidden=(16,))
    agent = ppo.make(cfg, env, CounterParams())
    hp = agent.default_hparams().replace(lr=jnp.float32(3e-3), gamma=jnp.float32(0.9), anneal_lr=jnp.float32(0.0),
                                         vf_clip=jnp.float32(100.0))
    train = jax.jit(make_train(agent, eval_every=agent.num_iterations))  # env params are an argument: one compile
    critic = nets.ValueNet(cfg.hidden, cfg.activation)
    out = {}
    for name, params in {"truncated": CounterParams(max_steps_in_episode=3),
                         "terminated": CounterParams(max_steps_in_episode=100, terminal_time=3)}.items():
        state, _ = train(jax.random.PRNGKey(0), hp, params)
        out[name] = float(critic.apply(state.params["critic"], jnp.array([0.0])))
    assert train._cache_size() == 1
    return out


def test_ppo_critic_bootstraps_at_truncation(learned_values):
    assert learned_values["truncated"] > 5.0


def test_ppo_critic_stops_at_termination(learned_values):
    assert learned_values["terminated"] < 3.2

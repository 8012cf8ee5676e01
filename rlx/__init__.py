"""rlx: reinforcement-learning algorithms as pure JAX functions.

Everything is a pure function of (key, hyperparameters, data):

    import jax, rlx
    from rlx.agents import ppo

    env, env_params = rlx.envs.make("CartPole-v1")
    agent = ppo.make(ppo.PPOConfig(), env, env_params, objective="ppo_clip")
    train = rlx.make_train(agent)
    state, metrics = jax.jit(jax.vmap(train, in_axes=(0, None)))(jax.random.split(key, 8), agent.default_hparams())
"""
from rlx import envs, objectives
from rlx.agent import Agent
from rlx.run import evaluate, make_train

__version__ = "0.1.0"
__all__ = ["Agent", "envs", "objectives", "make_train", "evaluate"]

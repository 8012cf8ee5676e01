"""rlx: reinforcement-learning algorithms as pure JAX functions.

Everything is a pure function of (key, hyperparameters, data):

    import jax, rlx
    from rlx.agents import ppo

    env, env_params = rlx.envs.make("CartPole-v1")
    agent = ppo.make(ppo.PPOConfig(), env, env_params, objective="ppo_clip")
    train = rlx.make_train(agent)
    state, metrics = jax.jit(jax.vmap(train, in_axes=(0, None)))(jax.random.split(key, 8), agent.default_hparams())

Submodules load on first use, so ``import rlx`` does not start jax's backends: the CLI
can still ask XLA for one device per CPU core (``rlx.parallel``).
"""
import importlib

__version__ = "0.1.0"
__all__ = ["Agent", "envs", "objectives", "agents", "make_train", "evaluate"]

_LAZY = {"envs": ("rlx.envs", None), "objectives": ("rlx.objectives", None), "agents": ("rlx.agents", None),
         "Agent": ("rlx.agent", "Agent"), "make_train": ("rlx.run", "make_train"), "evaluate": ("rlx.run", "evaluate")}


def __getattr__(name):
    if name not in _LAZY:
        try:  # any submodule: rlx.advantages, rlx.nets, ...
            return importlib.import_module(f"rlx.{name}")
        except ModuleNotFoundError:
            raise AttributeError(f"module 'rlx' has no attribute {name!r}") from None
    module, attr = _LAZY[name]
    value = importlib.import_module(module)
    return getattr(value, attr) if attr else value

"""Environments: the gymnax 1.0 protocol, ``make``, the Brax adapter and wrappers.

>>> env, env_params = rlx.envs.make("CartPole-v1")      # any gymnax id
>>> env, env_params = rlx.envs.make("brax:hopper")      # Brax, positional backend

``env_params`` is an explicit pytree, so one ``vmap`` also runs over environment variants
(e.g. ``env_params.replace(gravity=g)`` for a batch of gravities).
"""
from __future__ import annotations

import difflib

import jax

from .spaces import EnvSpec, episode_limit, spec
from .wrappers import (AutoReset, ClipAction, EpisodeStats, GymnaxNoReset, NormalizeObservation, NormalizeState,
                       Presampled, RescaleAction, VecEnv, Wrapper, normalize, strongly_typed, with_statistics)

BRAX_ENVS = ("ant", "fast", "halfcheetah", "hopper", "humanoid", "humanoidstandup", "inverted_pendulum",
             "inverted_double_pendulum", "pusher", "reacher", "swimmer", "walker2d")
BRAX_BACKENDS = ("positional", "generalized", "spring", "mjx")
# Needs a download at construction time, which this library must not depend on.
_UNSUPPORTED = ("MNISTBandit-bsuite",)


def gymnax_ids() -> list[str]:
    import gymnax

    return [e for e in gymnax.registered_envs if e not in _UNSUPPORTED]


def env_ids() -> list[str]:
    """Every id ``make`` accepts."""
    return gymnax_ids() + [f"brax:{n}" for n in BRAX_ENVS]


def validate_id(env_id: str) -> None:
    """Raise a ValueError naming the accepted ids when ``env_id`` is not one of them."""
    if not isinstance(env_id, str):
        raise TypeError(f"env: expected a string id, got {type(env_id).__name__}")
    if env_id.startswith("brax:"):
        name, _, backend = env_id[5:].partition("@")
        if name not in BRAX_ENVS:
            raise ValueError(f"env: unknown Brax env {name!r}; choose one of: "
                             + ", ".join(f"brax:{n}" for n in BRAX_ENVS))
        if backend and backend not in BRAX_BACKENDS:
            raise ValueError(f"env: unknown Brax backend {backend!r}; choose one of: {', '.join(BRAX_BACKENDS)}")
        return
    ids = gymnax_ids()
    if env_id not in ids:
        close = difflib.get_close_matches(env_id, env_ids(), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"env: unknown env id {env_id!r}.{hint} Accepted ids: {', '.join(env_ids())}")


def make(env_id: str, **kwargs):
    """Make an env following the gymnax 1.0 protocol: returns ``(env, env_params)``.

    Gymnax ids (``"CartPole-v1"``, ``"Breakout-MinAtar"``, ...) are gymnax's envs. On jax 0.10
    they step as ``AutoReset(GymnaxNoReset(env))``: gymnax's own auto-resetting ``step`` (tested),
    but its resets can be drawn for a whole rollout before the loop (``VecEnv.presample``),
    which takes the key split and the reset draw out of every step (faster:
    experiments/results/ab_rollout.json). On jax 0.11 they keep gymnax's ``step``: there the
    resets drawn ahead differed from gymnax's in the last bits (XLA fuses the draw differently
    outside the loop; PPO on Pendulum drifted by 1e-3 in the parameters after 40k steps), while
    on jax 0.10 a whole PPO run is bitwise the same either way. ``"brax:NAME"`` (or
    ``"brax:NAME@BACKEND"``, default backend positional, the fast one on CPU) is a Brax env
    behind the same protocol, with auto-reset. Both are wrapped in :class:`EpisodeStats`.
    """
    validate_id(env_id)
    if env_id.startswith("brax:"):
        from .brax_adapter import BraxEnv

        name, _, backend = env_id[5:].partition("@")
        env = AutoReset(BraxEnv(name, backend=backend or "positional", **kwargs))
        return EpisodeStats(env), env.default_params
    import gymnax

    env, params = gymnax.make(env_id, **kwargs)
    return EpisodeStats(AutoReset(GymnaxNoReset(env)) if _RESETS_AHEAD_ARE_BITWISE else env), params


# Whether a gymnax reset drawn ahead of a loop is bitwise the one drawn inside it (see make).
_RESETS_AHEAD_ARE_BITWISE = jax.__version_info__ < (0, 11)


__all__ = ["make", "env_ids", "validate_id", "spec", "EnvSpec", "episode_limit", "Wrapper", "AutoReset", "GymnaxNoReset", "Presampled", "EpisodeStats",
           "ClipAction", "RescaleAction", "VecEnv", "NormalizeObservation", "NormalizeState", "normalize", "strongly_typed", "with_statistics"]

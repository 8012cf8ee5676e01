"""Validation helpers shared by every agent's config: errors name the field and what it accepts."""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping


class ConfigError(ValueError):
    """A config, hyperparameter or input that cannot work; raised before anything compiles."""


def check_choice(owner: str, field: str, value: Any, choices: Iterable[Any]) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(f"{owner}.{field}={value!r} is not accepted; choose one of: "
                          + ", ".join(map(str, choices)))


def check_positive_int(owner: str, field: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{owner}.{field}={value!r}: must be a positive integer")


def check_hidden(owner: str, field: str, value: Any) -> None:
    if not isinstance(value, tuple) or not value or not all(isinstance(w, int) and w > 0 for w in value):
        raise ConfigError(f"{owner}.{field}={value!r}: must be a non-empty tuple of positive layer widths, "
                          "e.g. (64, 64)")


def check_bool(owner: str, field: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{owner}.{field}={value!r}: must be True or False")


def check_offline(config, config_type: type, spec, *, agent: str, dataset=None, positive_ints: Iterable[str] = (),
                  bools: Iterable[str] = (), choices: Mapping[str, Iterable[Any]] | None = None) -> None:
    """The checks every offline agent's config shares, then the agent's own named fields.

    Shared (every offline config has these fields): ``total_steps``, ``steps_per_iteration`` and
    ``batch_size`` are positive integers with total_steps ≥ steps_per_iteration; ``hidden`` is a
    tuple of widths; ``normalize_obs`` is a bool; the env has continuous actions; and when the
    config has ``reward_scale = "episode_range"`` the dataset holds ≥ 2 complete episodes.
    ``positive_ints``, ``bools`` and ``choices`` (field → allowed values) name the agent's own.
    """
    owner = config_type.__name__
    if not isinstance(config, config_type):
        article = "an" if owner[0] in "AEIOU" else "a"
        raise ConfigError(f"config must be {article} {owner}, got {type(config).__name__}")
    for f in ("total_steps", "steps_per_iteration", "batch_size", *positive_ints):
        check_positive_int(owner, f, getattr(config, f))
    check_hidden(owner, "hidden", config.hidden)
    for f in ("normalize_obs", *bools):
        check_bool(owner, f, getattr(config, f))
    for f, allowed in (choices or {}).items():
        check_choice(owner, f, getattr(config, f), allowed)
    if spec.discrete:
        raise ConfigError(f"{agent} here needs a continuous action space; the env has {spec.num_actions} "
                          "discrete actions")
    if config.total_steps < config.steps_per_iteration:
        raise ConfigError(f"{owner}.total_steps={config.total_steps} is smaller than one iteration "
                          f"(steps_per_iteration={config.steps_per_iteration})")
    if (getattr(config, "reward_scale", None) == "episode_range" and dataset is not None
            and len(dataset.episode_returns()) < 2):
        raise ConfigError(f"{owner}.reward_scale='episode_range' needs at least 2 complete episodes in the dataset")


def replace(config, **changes):
    """``dataclasses.replace`` whose unknown-field error lists the accepted fields."""
    names = [f.name for f in dataclasses.fields(config)]
    for k in changes:
        if k not in names:
            raise ConfigError(f"{type(config).__name__} has no field {k!r}; fields: {', '.join(names)}")
    return dataclasses.replace(config, **changes)

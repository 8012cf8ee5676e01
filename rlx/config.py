"""Validation helpers shared by every agent's config: errors name the field and what it accepts."""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable


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


def replace(config, **changes):
    """``dataclasses.replace`` whose unknown-field error lists the accepted fields."""
    names = [f.name for f in dataclasses.fields(config)]
    for k in changes:
        if k not in names:
            raise ConfigError(f"{type(config).__name__} has no field {k!r}; fields: {', '.join(names)}")
    return dataclasses.replace(config, **changes)

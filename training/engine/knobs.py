"""Knob: one FinetuneConfig field as the form, the API and the docs see it, with its checks.

`knob(...)` declares a dataclass field carrying the metadata; `Knob` reads it back (label, help, bounds,
choices), coerces a value to the field's type and says why a value is not allowed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


class ConfigError(ValueError):
    """A config value out of range; `field` names it for field-level form errors."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


@dataclass(frozen=True)
class Knob:
    """One FinetuneConfig field as the form, the API and the docs see it."""

    name: str
    kind: type  # int, float, str, bool or list (a list of module names, or None)
    default: Any
    label: str
    help: str
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    max_exclusive: bool = False
    choices: tuple[tuple[Any, str], ...] = ()  # (value, human label)
    advanced: bool = True  # shown under Advanced in the form
    required: bool = False  # text that may not be empty
    message: str = ""  # what an out-of-range value is told

    @property
    def values(self) -> tuple:
        return tuple(value for value, _ in self.choices)

    def coerce(self, value):
        """`value` as this knob's type (an int is a fine float); ConfigError when it is not one."""
        if self.kind is list:
            if value is None or isinstance(value, list | tuple):
                return value if value is None else list(value)
            raise ConfigError(self.name, "must be a list of module names")
        if self.kind is bool:
            if isinstance(value, bool):
                return value
            raise ConfigError(self.name, "must be true or false")
        if self.kind in (int, float) and isinstance(value, int | float) and not isinstance(value, bool):
            if isinstance(value, float) and not (math.isfinite(value) and (self.kind is float or value.is_integer())):
                raise ConfigError(
                    self.name, "must be a whole number" if self.kind is int else "must be a finite number"
                )
            return self.kind(value)
        if self.kind is str and isinstance(value, str):
            return value
        kind = {int: "a whole number", float: "a number", str: "text"}[self.kind]
        raise ConfigError(self.name, f"must be {kind}")

    def problem(self, value) -> str | None:
        """Why `value` (already of the right type) is not allowed; None if it is."""
        if self.kind is list:
            if value is not None and (not value or not all(isinstance(m, str) and m for m in value)):
                return self.message
            return None
        if self.kind is str and self.choices and value not in self.values:
            return f"must be one of {', '.join(self.values)}"
        if self.required and not value:
            return self.message
        if self.min is not None and (value <= self.min if self.min_exclusive else value < self.min):
            return self.message
        if self.max is not None and (value >= self.max if self.max_exclusive else value > self.max):
            return self.message
        return None

    def bounds_text(self) -> str:
        """The allowed range or values in words: "1 to 1024", "0 ≤ x < 1", "lora, qlora, dora"."""
        if self.kind is list:
            return "a list of module names"
        if self.choices:
            return ", ".join(str(v).lower() if isinstance(v, bool) else str(v) for v in self.values)
        if self.min is None and self.max is None:
            return ""
        if not self.min_exclusive and not self.max_exclusive and self.min is not None and self.max is not None:
            return f"{number_text(self.min)} to {number_text(self.max)}"
        low = "" if self.min is None else f"{number_text(self.min)} {'<' if self.min_exclusive else '≤'} "
        high = "" if self.max is None else f" {'<' if self.max_exclusive else '≤'} {number_text(self.max)}"
        return f"{low}x{high}"


def number_text(value) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}" if isinstance(value, int) and abs(value) >= 10_000 else str(value)


def knob(default, label: str, help: str, **spec):
    """A dataclass field carrying its Knob metadata (everything but name, kind and default)."""
    return field(default=default, metadata={"knob": {"label": label, "help": help, **spec}})


KINDS = {"int": int, "float": float, "str": str, "bool": bool, "list[str] | None": list}

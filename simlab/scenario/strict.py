"""The base every scenario model builds on: strict, immutable, finite; and the shared field types."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from simlab.scenario.limits import shown

Probability = Annotated[float, Field(ge=0, le=1)]


class Strict(BaseModel):
    """Base of every scenario model: unknown keys are errors; values are immutable; numbers are finite
    (an infinite timeout or TTL overflows where it becomes integer milliseconds, deep in a run)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def known(kind: str, value: str, names: tuple[str, ...]) -> str:
    """``value`` if it is one of ``names``; else a ``ValueError`` naming the ``kind`` and the choices."""
    if value not in names:
        raise ValueError(f"unknown {kind} {shown(value)}; expected one of {', '.join(names)}")
    return value

"""Distributions a scenario can draw durations and counts from (all values in seconds are >= 0)."""

from __future__ import annotations

import random
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_NUMBER = 1e9
"""The largest duration, delay or rate a scenario may give (31 years in seconds): far past any run's
horizon, and inside what every consumer accepts (Redis refuses a TTL of 1e300 s as milliseconds)."""

NonNegative = Annotated[float, Field(ge=0, le=MAX_NUMBER)]
Positive = Annotated[float, Field(gt=0, le=MAX_NUMBER)]


class _Dist(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # a draw of inf overflows later


class Fixed(_Dist):
    """Always ``value``."""

    dist: Literal["fixed"]
    value: NonNegative

    def draw(self, rng: random.Random) -> float:
        """One draw."""
        return self.value


class Uniform(_Dist):
    """Uniform in [low, high]."""

    dist: Literal["uniform"]
    low: NonNegative
    high: NonNegative

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) must be >= low ({self.low})")
        return self

    def draw(self, rng: random.Random) -> float:
        """One draw."""
        return rng.uniform(self.low, self.high)


class Exponential(_Dist):
    """Exponential with the given mean (memoryless gaps; a mean of 0.005 gives gaps of a few ms)."""

    dist: Literal["exponential"]
    mean: Positive

    def draw(self, rng: random.Random) -> float:
        """One draw."""
        return rng.expovariate(1.0 / self.mean)


class LogNormal(_Dist):
    """Lognormal around ``median`` with shape ``sigma`` (heavy right tail)."""

    dist: Literal["lognormal"]
    median: Positive
    sigma: NonNegative = 0.5

    def draw(self, rng: random.Random) -> float:
        """One draw."""
        return self.median * rng.lognormvariate(0.0, self.sigma)


Distribution = Annotated[Fixed | Uniform | Exponential | LogNormal, Field(discriminator="dist")]

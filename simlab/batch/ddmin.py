"""Delta debugging (Zeller and Hildebrandt's ddmin): a 1-minimal subset of items that still fails a test.

``ddmin(items, fails)`` returns a subset of ``items`` (in their order) for which ``fails`` holds and from
which no single item can be removed with ``fails`` still holding (1-minimal), testing subsets and their
complements at ever finer granularity. It assumes ``fails(items)`` holds and never calls ``fails`` on the
empty list (a run with nothing removed is the caller's to judge). It never returns a subset it has not
seen fail. Written here rather than taken from PyPI: the packages there (``ddmin`` 0.0.1, 2019; ``picire``,
last released 2021, built for files and parallel test processes) are unmaintained or far larger than the
thirty lines a list of fault families needs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def ddmin(items: Sequence[T], fails: Callable[[list[T]], bool]) -> list[T]:
    """The 1-minimal failing subset of ``items`` that ddmin reaches (``fails(list(items))`` is assumed true)."""
    seen: dict[tuple[int, ...], bool] = {}  # NOTE: each candidate is a whole run: never test one twice

    def test(subset: list[int]) -> bool:  # subsets are kept as positions, so equal items stay distinct
        key = tuple(subset)
        if key not in seen:
            seen[key] = fails([items[i] for i in subset])
        return seen[key]

    current = list(range(len(items)))
    granularity = 2
    while len(current) >= 2:
        chunks = _split(current, granularity)
        reduced = next((chunk for chunk in chunks if test(chunk)), None)
        if reduced is not None:  # one chunk alone fails: keep it, start coarse again
            current, granularity = reduced, 2
            continue
        complements = ([i for i in current if i not in set(chunk)] for chunk in chunks)
        complement = next((c for c in complements if c and test(c)), None)
        if complement is not None:  # removing one chunk still fails: drop it, a little finer
            current, granularity = complement, max(granularity - 1, 2)
            continue
        if granularity >= len(current):  # every single item is needed
            break
        granularity = min(granularity * 2, len(current))
    return [items[i] for i in current]


def _split(items: list[int], parts: int) -> list[list[int]]:
    """``items`` cut into ``parts`` consecutive chunks of nearly equal size (none empty)."""
    size, extra = divmod(len(items), parts)
    chunks, at = [], 0
    for i in range(parts):
        end = at + size + (1 if i < extra else 0)
        chunks.append(items[at:end])
        at = end
    return [chunk for chunk in chunks if chunk]

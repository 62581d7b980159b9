"""Seeded, named random streams and the ids drawn from them.

One root seed is split into independent streams by name (``jitter``,
``ids/saga``, ``broker/alpaca``...), so adding a component never shifts the
draws of the others.
"""

from __future__ import annotations

import hashlib
import random
import uuid


def derive_seed(root_seed: int, name: str) -> int:
    """A 64-bit seed for stream ``name``, stable across Python versions and runs."""
    digest = hashlib.sha256(f"{root_seed}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


class RandomStreams:
    """Named ``random.Random`` streams derived from one root seed."""

    def __init__(self, root_seed: int) -> None:
        if not isinstance(root_seed, int) or isinstance(root_seed, bool):
            raise ValueError(f"root_seed must be an int, got {root_seed!r}")
        self.root_seed = root_seed
        self._streams: dict[str, random.Random] = {}

    def stream(self, name: str) -> random.Random:
        """The generator for ``name``; the same object on every call."""
        rng = self._streams.get(name)
        if rng is None:
            rng = self._streams[name] = random.Random(derive_seed(self.root_seed, name))
        return rng


class IdSource:
    """UUID-shaped ids drawn from seeded streams, one stream per kind of id."""

    def __init__(self, streams: RandomStreams) -> None:
        self._streams = streams

    def new_id(self, kind: str = "saga") -> str:
        """A fresh id for ``kind``, e.g. ``'saga'`` or ``'event'``."""
        bits = self._streams.stream(f"ids/{kind}").getrandbits(128)
        return str(uuid.UUID(int=bits, version=4))

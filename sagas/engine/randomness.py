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

    @classmethod
    def of(cls, seed: int | RandomStreams) -> RandomStreams:
        """``seed`` itself if it already is a run's streams (so one object flows through a run), else new ones."""
        return seed if isinstance(seed, RandomStreams) else cls(seed)

    def stream(self, name: str) -> random.Random:
        """The generator for ``name``; the same object on every call."""
        rng = self._streams.get(name)
        if rng is None:
            rng = self._streams[name] = random.Random(derive_seed(self.root_seed, name))
        return rng


class IdSource:
    """UUID-shaped ids drawn from seeded streams, one stream per kind of id.

    With an ``incarnation`` (a manager's number, unique per store), the id's last 32 bits are
    that number and the rest comes from a stream of its own: two managers started with the
    same seed (a restart) never draw the same id, and a run stays deterministic because the
    incarnation is a count, not a time.
    """

    def __init__(self, streams: RandomStreams, incarnation: int = 0) -> None:
        if not 0 <= incarnation < 2**32:
            raise ValueError(f"incarnation must be in [0, 2**32), got {incarnation!r}")
        self._streams = streams
        self.incarnation = incarnation

    def new_id(self, kind: str = "saga") -> str:
        """A fresh id for ``kind``, e.g. ``'saga'`` or ``'event'``."""
        if not self.incarnation:
            bits = self._streams.stream(f"ids/{kind}").getrandbits(128)
        else:
            random_bits = self._streams.stream(f"ids/{kind}@{self.incarnation}").getrandbits(96)
            bits = random_bits << 32 | self.incarnation
        return str(uuid.UUID(int=bits, version=4))

"""Seeded, named random streams and the ids drawn from them.

One root seed is split into independent streams by name (``jitter``,
``ids/saga``, ``broker/alpaca``...), so adding a component never shifts the
draws of the others.
"""

from __future__ import annotations

import hashlib
import random


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
        self._by_kind: dict[str, random.Random] = {}  # the stream of each kind, looked up once

    def new_id(self, kind: str = "saga") -> str:
        """A fresh id for ``kind``, e.g. ``'saga'`` or ``'event'``."""
        rng = self._by_kind.get(kind)
        if rng is None:
            name = f"ids/{kind}@{self.incarnation}" if self.incarnation else f"ids/{kind}"
            rng = self._by_kind[kind] = self._streams.stream(name)
        if self.incarnation:
            return uuid4_text(rng.getrandbits(96) << 32 | self.incarnation)
        return uuid4_text(rng.getrandbits(128))


_UUID4_CLEAR = ~(0xC000 << 48 | 0xF000 << 64)  # the variant and version bits uuid.UUID(version=4) overwrites
_UUID4_SET = 0x8000 << 48 | 0x4000 << 64  # RFC 4122 variant, version 4


def uuid4_text(bits: int) -> str:
    """``str(uuid.UUID(int=bits, version=4))``, without building the object (ids are drawn on the hot path)."""
    text = f"{bits & _UUID4_CLEAR | _UUID4_SET:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"

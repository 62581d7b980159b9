"""Seeded ids: the same text ``uuid.UUID(int=bits, version=4)`` gives, drawn from named streams."""

from __future__ import annotations

import random
import uuid

from sagas.engine.randomness import IdSource, RandomStreams, uuid4_text


def test_uuid4_text_is_the_standard_library_text_for_any_bits() -> None:
    rng = random.Random(7)
    edges = [0, 2**128 - 1, 1 << 127, (1 << 128) - (1 << 76), 0xC000 << 48, 0xF000 << 64]
    for bits in edges + [rng.getrandbits(128) for _ in range(5000)]:
        assert uuid4_text(bits) == str(uuid.UUID(int=bits, version=4))


def test_ids_are_uuid4_drawn_from_one_stream_per_kind() -> None:
    ids = IdSource(RandomStreams(42))
    sagas = [ids.new_id("saga") for _ in range(3)]
    event = ids.new_id("event")
    reference = RandomStreams(42)
    assert sagas == [str(uuid.UUID(int=reference.stream("ids/saga").getrandbits(128), version=4)) for _ in range(3)]
    assert event == str(uuid.UUID(int=reference.stream("ids/event").getrandbits(128), version=4))


def test_an_incarnation_fills_the_last_32_bits_and_draws_from_its_own_stream() -> None:
    ids = IdSource(RandomStreams(42), incarnation=7)
    reference = RandomStreams(42).stream("ids/saga@7")
    drawn = [ids.new_id() for _ in range(3)]
    assert drawn == [str(uuid.UUID(int=reference.getrandbits(96) << 32 | 7, version=4)) for _ in range(3)]
    assert all(text.endswith("00000007") for text in drawn)

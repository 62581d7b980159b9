"""The lab's limits on what it reads, and how a value the user gave is shown back in one line.

Every limit is checked on the structure of the input (bytes, nesting, nodes, counts) before
anything runs, so hostile input is refused in well under a second and a few tens of MB,
never by running until memory or time runs out. README.md ("Limits") says why each is where it is.
"""

from __future__ import annotations

import re
import reprlib
from pathlib import Path

MAX_FILE_BYTES = 1_048_576
"""A scenario or grid file: 1 MiB (the shipped ones are 1-3 KB)."""
MAX_DEPTH = 32
"""Nesting of YAML collections (the scenario schema itself nests 6 deep)."""
MAX_NODES = 10_000
"""YAML nodes in a document, counting every alias as a full copy of what it names (an alias bomb
expands to billions); the largest shipped scenario has a few hundred."""
MAX_RUNS = 10_000_000
"""Runs of one batch, and of a whole sweep (points x runs per point)."""
MAX_DEMO_RUNS = 100_000
"""Runs of ``simlab sample``, which keeps every run's outcome in memory to print its table."""
MAX_COMPARED_RUNS = 10_000
"""Runs per pass of ``simlab check-determinism``, which loads three passes' whole tables to compare them."""
MAX_SHARDS = 100_000
"""Shards of one batch (runs / shard size): each is nine files on disk (eight tables and a marker)."""
MAX_WORKERS = 256
"""Worker processes (each is a process started up front)."""
MAX_USERS = 1_000
"""Users of a scenario's workload: one run of ``thundering_herd`` with 1,000 users takes ~4 s and
~250 MB in its worker; with 5,000 users ~17 s and ~600 MB."""
MAX_WORKLOAD_SAGAS = 10_000
"""Sagas a workload starts per run, about ``users x (1 + 2 x cycles.count + orders.per_user)``."""
MAX_EVENTS = 1_000
"""Manager crashes, overlapping managers, and attempts of a retry policy, per run."""
MAX_POINTS = 1_000
"""Points of a sweep's grid (the product of its value lists), and ``samples`` in random mode;
point folders are named ``point-000`` to ``point-999``."""

SHOWN_CHARS = 80
"""A value the user gave is echoed in a message cut to this many characters."""

_REPR = reprlib.Repr()
_REPR.maxstring = SHOWN_CHARS  # strings inside a collection: reprlib cuts them in their middle
_REPR.maxother = SHOWN_CHARS
_REPR.maxlong = SHOWN_CHARS
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 8
_REPR.maxlevel = 3


def cut(text: str, limit: int = SHOWN_CHARS) -> str:
    """``text``, cut to ``limit`` characters (the last one ``…``) if it is longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shown(value: object) -> str:
    """``repr(value)`` for a message, at most ``SHOWN_CHARS`` characters however large the value.

    Built with ``reprlib`` so that a huge value (a 50 MB string, a list of a million items) costs
    no more to show than a small one.
    """
    if isinstance(value, str):
        text = repr(value[: SHOWN_CHARS + 1])  # only what can be shown is ever copied
        return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 2] + "…" + text[0]
    try:
        return cut(_REPR.repr(value))
    except ValueError:  # an integer past Python's 4,300 digits for a conversion to text
        return "(an integer too long to show)"


_QUOTED = re.compile("'([^'\\n]{" + str(SHOWN_CHARS - 1) + ",})'")


def cut_quoted(text: str) -> str:
    """``text`` with every single-quoted value longer than ``SHOWN_CHARS`` (quotes included) cut.

    For messages written by libraries (PyYAML, pydantic) that quote the user's value whole.
    """
    return _QUOTED.sub(lambda match: "'" + cut(match.group(1), SHOWN_CHARS - 2) + "'", text)


def shown_path(path: Path) -> str:
    """A path as given, cut if absurdly long (a real one is at most 4,096 bytes; a message stays one line)."""
    text = str(path)
    return text if len(text) <= 255 and "\n" not in text else shown(text)

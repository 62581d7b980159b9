"""Every bug ``benchmarks/mutation_score.py`` plants still finds its place in the code.

The mutation score is only as good as its mutants: a snippet that no longer matches (code moved,
re-indented) would stop the benchmark, or worse, plant nothing. Each must occur exactly once.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("mutation_score", ROOT / "benchmarks" / "mutation_score.py")
assert _spec is not None and _spec.loader is not None
mutation_score = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = mutation_score  # its dataclasses look their module up by name
_spec.loader.exec_module(mutation_score)


@pytest.mark.parametrize("mutant", mutation_score.MUTANTS, ids=lambda m: m.name)
def test_the_planted_bug_occurs_exactly_once_where_it_is_planted(mutant):
    assert (ROOT / mutant.path).read_text().count(mutant.old) == 1

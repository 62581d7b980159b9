"""Scenario files: what a batch of lab runs simulates, validated once at the edge.

Layer 3, the lab's input language. A scenario names broker profiles (``simlab.sim.brokers``),
invariants and engine paths (``simlab.evidence``), so it sits above both.

May import: ``simlab.evidence``, ``simlab.sim`` and ``sagas``.
"""

from simlab.scenario.loader import ScenarioError, list_scenarios, load_scenario, resolve_scenario_path
from simlab.scenario.model import Scenario

__all__ = ["Scenario", "ScenarioError", "list_scenarios", "load_scenario", "resolve_scenario_path"]

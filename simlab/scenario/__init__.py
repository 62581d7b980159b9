"""Scenario files: what a batch of lab runs simulates, validated once at the edge."""

from simlab.scenario.loader import ScenarioError, list_scenarios, load_scenario, resolve_scenario_path
from simlab.scenario.model import Scenario

__all__ = ["Scenario", "ScenarioError", "list_scenarios", "load_scenario", "resolve_scenario_path"]

"""Scenario files: every shipped one validates; a malformed one gets one clear line and exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sagas.trading.wiring import saga_step_names
from simlab.scenario import ScenarioError, list_scenarios, load_scenario
from simlab.scenario.loader import SCENARIOS_DIR, read_yaml_mapping

SHIPPED = sorted(p.stem for p in SCENARIOS_DIR.glob("*.yaml"))
REQUIRED = {
    "broker_connection",
    "broker_disconnection",
    "connection_recovery",
    "user_deletion",
    "order_execution",
    "position_management",
    "reconnect_race",
    "user_deletion_cascade",
    "thundering_herd",
    "chaos_swarm",
}


def test_the_required_scenarios_are_shipped():
    assert set(SHIPPED) >= REQUIRED


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_scenario_validates_and_says_what_question_it_answers(name):
    scenario = load_scenario(name)
    assert scenario.name == name
    question = dict(list_scenarios())[name]
    assert question.endswith("?") and len(question) > 20
    scenario.sagas.to_config()  # its saga configuration builds too


def test_step_overrides_reach_the_saga_definition():
    from sagas.trading.sagas import ConnectionRecoverySaga
    from sagas.trading.wiring import TradingDeps

    config = load_scenario("thundering_herd").sagas.to_config()
    deps = TradingDeps(brokers={}, cache=None, redis=None, locks=None, credentials=str, config=config)  # type: ignore[arg-type]
    steps = {s.name: s for s in ConnectionRecoverySaga(deps).validated_steps()}
    assert steps["restore_connection"].policy.max_attempts == 6
    assert steps["restore_connection"].policy.max_delay_ms == 30000
    assert steps["verify_recoverable"].policy.max_attempts == 1  # untouched


GOOD = """\
# Question: a test scenario?
name: t
workload:
  users: 2
  brokers: [alpaca]
  cycles:
    disconnect_to_reconnect_s: {dist: exponential, mean: 0.005}
brokers:
  alpaca: {profile: real}
"""

BAD = {
    "unknown key": (
        GOOD.replace("  users: 2", "  users: 2\n  userz: 3"),
        "workload.userz: unknown key (not part of the scenario schema)",
    ),
    "wrong type": (GOOD.replace("users: 2", "users: many"), "workload.users: Input should be a valid integer"),
    "negative duration": (
        GOOD.replace("mean: 0.005", "mean: -1"),
        "workload.cycles.disconnect_to_reconnect_s.mean: Input should be greater than 0 (got -1)",
    ),
    "unknown broker profile": (
        GOOD.replace("profile: real", "profile: fancy"),
        "brokers.alpaca.profile: unknown broker profile 'fancy'; expected one of virtual, real",
    ),
    "unknown saga type": (
        GOOD + "sagas:\n  timeouts_s: {RefundSaga: 30}\n",
        "sagas.timeouts_s: unknown saga type 'RefundSaga'; expected one of BrokerConnectionSaga",
    ),
    "unknown step": (
        GOOD + "sagas:\n  steps:\n    BrokerDisconnectionSaga.purge: {timeout_s: 5}\n",
        "sagas.steps: unknown step of BrokerDisconnectionSaga 'purge'; expected one of validate_disconnection",
    ),
    "broker not defined": (
        GOOD.replace("brokers: [alpaca]", "brokers: [alpaca, ib]"),
        "workload.brokers names broker 'ib', which brokers does not define (defined: alpaca)",
    ),
    "yaml syntax": (GOOD.replace("users: 2", "users: [2"), "YAML syntax error"),
    "not a mapping": ("- just\n- a list\n", "expected a mapping of scenario fields, got list"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_malformed_scenario_gets_one_line_naming_file_field_and_problem(case, tmp_path: Path):
    text, expected = BAD[case]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "simlab", "validate", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"simlab validate: {path}: ")
    assert expected in lines[0]
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_the_good_scenario_validates(tmp_path: Path):
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    assert load_scenario(str(path)).workload.users == 2


def test_an_unknown_scenario_name_lists_the_known_ones():
    with pytest.raises(
        ScenarioError, match=r"reconnect_racer: no scenario of that name .* \(known: broker_connection, "
    ):
        load_scenario("reconnect_racer")


def test_the_step_names_registry_matches_the_sagas():
    names = saga_step_names()
    assert names["BrokerDisconnectionSaga"][-1] == "purge_connection" and len(names["BrokerDisconnectionSaga"]) == 8
    assert set(names) == {
        "BrokerConnectionSaga",
        "BrokerDisconnectionSaga",
        "ConnectionRecoverySaga",
        "UserDeletionSaga",
        "OrderExecutionSaga",
        "PositionManagementSaga",
    }


# -- the limits of the loader, exactly where they are -------------------------------------------


def _read(text: str, tmp_path: Path) -> dict[str, object]:
    path = tmp_path / "limits.yaml"
    path.write_text(text)
    return read_yaml_mapping(path, "a mapping", ScenarioError)


def test_nesting_stops_at_32_collections(tmp_path: Path):
    # The top-level mapping is the first collection; 31 lists inside it make 32.
    value: object = 1
    for _ in range(31):
        value = [value]
    assert _read("x: " + "[" * 31 + "1" + "]" * 31 + "\n", tmp_path)["x"] == value
    with pytest.raises(ScenarioError, match=r"limits.yaml: x(\[0\]){31}: nested deeper than 32 levels \(the limit\)$"):
        _read("x: " + "[" * 32 + "1" + "]" * 32 + "\n", tmp_path)


def test_a_document_stops_at_10_000_nodes_aliases_counted_as_copies(tmp_path: Path):
    # Nodes: the top mapping, the key x, the list, and its items.
    assert len(_read("x: [" + ", ".join(["1"] * 9_997) + "]\n", tmp_path)["x"]) == 9_997  # type: ignore[arg-type]
    with pytest.raises(ScenarioError, match=r"limits.yaml: x\[9997\]: the document expands to more than 10,000"):
        _read("x: [" + ", ".join(["1"] * 9_998) + "]\n", tmp_path)
    # The mapping, x, its list and 99 items (102), y and its list (2), and 98 aliases of x's list (100 nodes
    # each): 9,904, within the limit though the file holds about 200 nodes; one more alias is past it.
    ninety_nine = "[" + ", ".join(["1"] * 99) + "]"
    aliases = ", ".join(["*a"] * 98)
    assert len(_read(f"x: &a {ninety_nine}\ny: [{aliases}]\n", tmp_path)["y"]) == 98  # type: ignore[arg-type]
    with pytest.raises(ScenarioError, match=r"limits.yaml: y\[98\]: the document expands to more than 10,000"):
        _read(f"x: &a {ninety_nine}\ny: [{aliases}, *a]\n", tmp_path)


def test_merge_keys_may_be_overridden_and_are_no_duplicate(tmp_path: Path):
    text = "base: &b {users: 2, brokers: [alpaca]}\nworkload: {<<: *b, users: 3}\n"
    assert _read(text, tmp_path)["workload"] == {"users": 3, "brokers": ["alpaca"]}


def test_keys_that_yaml_reads_as_the_same_value_are_duplicates(tmp_path: Path):
    # 1 and 0x1 are one integer: the mapping YAML would build holds only the last.
    with pytest.raises(ScenarioError, match=r"limits.yaml: x.0x1: duplicate key, on lines 2 and 3"):
        _read("x:\n  1: a\n  0x1: b\n", tmp_path)


def test_a_file_of_exactly_1_mib_is_read(tmp_path: Path):
    head = "x: 1\n# "
    assert _read(head + "y" * (1_048_576 - len(head) - 1) + "\n", tmp_path) == {"x": 1}


@pytest.mark.parametrize("name", ["a", "reconnect_race", "x-1", "9lives", "a" * 64])
def test_a_slug_is_a_scenario_name(name: str, tmp_path: Path):
    path = tmp_path / "named.yaml"
    path.write_text(f"name: {name!r}\n")
    assert load_scenario(str(path)).name == name

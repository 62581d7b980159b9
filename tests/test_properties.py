"""Stateful property test: random sequences of step outcomes against a model of the engine.

Each rule adds a step (with the outcomes of its attempts) or scripts a
compensation to fail; after every rule the saga built so far runs on the
simulated clock and must match the model: exactly one terminal status, the
compensations in reverse order of the steps that completed (or may have
applied), and nothing running after the terminal status.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from sagas import SagaStatus
from tests.harness import run_sim
from tests.scripted import Go, ScriptedSaga

ATTEMPTS = 3  # retry_count=2
TERMINAL = {s.value for s in SagaStatus if s.is_terminal}
attempt_outcomes = st.lists(st.sampled_from(["ok", "fail", "hang", "abort"]), max_size=ATTEMPTS + 1)


def model(steps, script, compensation_script):
    """Expected (status, completed, compensation order, failed compensations)."""
    completed: list[str] = []
    possibly_applied: list[str] = []
    for name in steps:
        outcomes = [kind for kind, _ in script.get(name, ())][:ATTEMPTS]
        outcomes += ["ok"] * (ATTEMPTS - len(outcomes))
        for kind in outcomes:
            if kind == "hang" and name not in possibly_applied:
                possibly_applied.append(name)
            if kind == "ok":
                completed.append(name)
                break
            if kind == "abort":
                return SagaStatus.ABORTED, completed, [], []
        else:
            touched = set(completed) | set(possibly_applied)
            order = [s for s in reversed(steps) if s in touched]
            failed = [
                s for s in order if [k for k, _ in compensation_script.get(s, ())][:ATTEMPTS] == ["fail"] * ATTEMPTS
            ]
            status = SagaStatus.COMPENSATION_FAILED if failed else SagaStatus.COMPENSATED
            return status, completed, order, failed
    return SagaStatus.COMPLETED, completed, [], []


class SagaOutcomes(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.steps: list[str] = []
        self.script: dict[str, list[tuple[str, float]]] = {}
        self.compensation_script: dict[str, list[tuple[str, float]]] = {}

    @precondition(lambda self: len(self.steps) < 6)
    @rule(outcomes=attempt_outcomes, seconds=st.sampled_from([0.0, 0.5, 1.25]))
    def add_step(self, outcomes, seconds):
        name = f"step{len(self.steps)}"
        self.steps.append(name)
        self.script[name] = [(kind, seconds) for kind in outcomes]

    @precondition(lambda self: bool(self.steps))
    @rule(data=st.data(), failures=st.integers(min_value=1, max_value=ATTEMPTS))
    def fail_a_compensation(self, data, failures):
        name = data.draw(st.sampled_from(self.steps))
        self.compensation_script[name] = [("fail", 0.25)] * failures

    @invariant()
    def the_engine_matches_the_model(self):
        if not self.steps:
            return
        steps = list(self.steps)

        async def main(world):
            world.manager.register(
                Go, lambda: ScriptedSaga(world.note, steps=steps, retry_count=ATTEMPTS - 1, saga_timeout=1e6)
            )
            await world.manager.handle_event(
                Go(event_id="e", script=self.script, compensation_script=self.compensation_script)
            )
            return await world.manager.wait_idle()

        [final], world = run_sim(main)
        status, completed, order, failed = model(steps, self.script, self.compensation_script)
        records = world.tracer.records

        terminal = [i for i, r in enumerate(records) if r.phase == "saga" and r.outcome in TERMINAL]
        assert len(terminal) == 1, "exactly one terminal status"
        assert terminal[0] == len(records) - 1, "no transition after the terminal status"
        end = records[-1].t
        assert all(t <= end for t, _ in world.log), "no step or compensation runs after the end"

        assert final.status is status
        assert final.completed_steps == completed
        first_compensations = [
            r.step for r in records if r.phase == "compensate" and r.outcome == "started" and r.attempt == 1
        ]
        assert first_compensations == order, "compensation in reverse order of what may have applied"
        assert final.failed_compensations == failed
        assert len(set(first_compensations)) == len(first_compensations), "no step compensated twice"


TestSagaOutcomes = SagaOutcomes.TestCase
TestSagaOutcomes.settings = settings(
    max_examples=150, stateful_step_count=8, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

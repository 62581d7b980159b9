"""Retry delays as plain data: bounds of every jitter strategy, seeding, and ``retry_async``."""

from __future__ import annotations

import random

import pytest

from sagas import JITTER_STRATEGIES, NonRetryableError, RetryConfig, RetryExhausted, backoff_delay, retry_async
from sagas.engine.retry import next_retry_delay, worst_case_seconds

SAMPLES = 2000
POLICY = dict(initial_delay_ms=100, max_delay_ms=3000, backoff_factor=2.0)


def _delays(jitter: str, seed: int, retries: int = 8) -> list[tuple[int, float, float | None]]:
    config = RetryConfig(max_attempts=retries + 1, jitter=jitter, **POLICY)
    rng = random.Random(seed)
    out = []
    for _ in range(SAMPLES // retries):
        previous = None
        for n in range(1, retries + 1):
            delay = backoff_delay(config, n, previous, rng)
            out.append((n, delay, previous))
            previous = delay
    return out


def _cap(n: int) -> float:
    return min(3.0, 0.1 * 2 ** (n - 1))


@pytest.mark.parametrize("jitter", JITTER_STRATEGIES)
def test_every_jitter_strategy_stays_within_its_bounds(jitter):
    samples = _delays(jitter, seed=1)
    assert len(samples) >= 1000
    for n, delay, previous in samples:
        if jitter == "none":
            assert delay == _cap(n)
        elif jitter == "full":
            assert 0.0 <= delay <= _cap(n)
        elif jitter == "equal":
            assert _cap(n) / 2 <= delay <= _cap(n)
        else:  # decorrelated: uniform(initial, 3 * previous), capped
            upper = 3 * (previous if previous is not None else 0.1)
            assert 0.1 <= delay <= min(3.0, max(upper, 0.1))


@pytest.mark.parametrize("jitter", [j for j in JITTER_STRATEGIES if j != "none"])
def test_jittered_delays_differ_between_seeds_and_repeat_for_a_seed(jitter):
    assert _delays(jitter, seed=1) == _delays(jitter, seed=1)
    assert _delays(jitter, seed=1) != _delays(jitter, seed=2)
    spread = {round(d, 6) for _, d, _ in _delays(jitter, seed=3)}
    assert len(spread) > 900  # really random, not a handful of values


def test_full_jitter_uses_the_whole_range():
    delays = [d for n, d, _ in _delays("full", seed=5) if n == 8]
    assert min(delays) < 0.3 and max(delays) > 2.7


def test_seed_spelling_jitter_true_means_full():
    assert RetryConfig(jitter=True).jitter == "full"
    assert RetryConfig(jitter=False).jitter == "none"


def test_huge_retry_numbers_are_capped_without_overflow():
    config = RetryConfig(max_attempts=10_000, initial_delay_ms=1, max_delay_ms=500, backoff_factor=10.0)
    assert backoff_delay(config, 5000, None, random.Random(0)) == 0.5


def test_next_retry_delay_stops_on_attempts_non_retryable_errors_and_budget():
    config = RetryConfig(max_attempts=3, initial_delay_ms=1000, retry_budget_ms=2500, non_retryable=(KeyError,))
    rng = random.Random(0)
    kwargs = dict(previous_delay_s=None, rng=rng)
    assert next_retry_delay(config, attempts_made=1, error=RuntimeError(), elapsed_s=0.0, **kwargs) == 1.0
    assert next_retry_delay(config, attempts_made=3, error=RuntimeError(), elapsed_s=0.0, **kwargs) is None
    assert next_retry_delay(config, attempts_made=1, error=KeyError(), elapsed_s=0.0, **kwargs) is None
    assert next_retry_delay(config, attempts_made=1, error=NonRetryableError(), elapsed_s=0.0, **kwargs) is None
    assert next_retry_delay(config, attempts_made=2, error=RuntimeError(), elapsed_s=0.6, **kwargs) is None


def test_retry_async_polls_until_consistent_as_in_the_seed(run):
    # The seed's eventual-consistency check: poll with 0.15 s settle time until a lagging
    # read model shows the accounts deleted (here at t = 2.0 s).
    config = RetryConfig(max_attempts=5, initial_delay_ms=500, max_delay_ms=2000, backoff_factor=1.5, jitter="none")

    async def main(world):
        clock = world.runtime
        checks = []

        async def check_accounts_deleted():
            await clock.sleep(0.15)
            checks.append(round(clock.now(), 6))
            if clock.now() < 2.0:
                raise RuntimeError("Accounts still in read model: 2")
            return True

        return await retry_async(check_accounts_deleted, retry_config=config, clock=clock, rng=random.Random(0)), checks

    (ok, checks), _ = run(main)
    assert ok is True
    assert checks == [0.15, 0.8, 1.7, 2.975]  # waits 0.5, 0.75, 1.125 between attempts


def test_retry_async_gives_up_with_the_last_error_when_the_budget_is_short(run):
    config = RetryConfig(max_attempts=3, initial_delay_ms=100, jitter="none")

    async def main(world):
        async def never():
            raise RuntimeError("Accounts still in read model: 1")

        with pytest.raises(RetryExhausted) as caught:
            await retry_async(never, retry_config=config, clock=world.runtime, rng=random.Random(0))
        return caught.value, world.runtime.now()

    (error, finished_at), _ = run(main)
    assert error.attempts == 3
    assert str(error.last_error) == "Accounts still in read model: 1"
    assert finished_at == pytest.approx(0.3)


# -- the longest a policy can take ------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "attempt_timeout_s", "expected"),
    [
        # 4 attempts of at most 10 s, delays of at most 1, 2 and 4 s (full jitter's upper end)
        (RetryConfig(max_attempts=4, initial_delay_ms=1000, max_delay_ms=5000, jitter="full"), 10.0, 47.0),
        # the cap holds the 4th and 5th delay at 5 s
        (RetryConfig(max_attempts=6, initial_delay_ms=1000, max_delay_ms=5000, jitter="equal"), 1.0, 6.0 + 17.0),
        # decorrelated: each delay at most three times the previous one's upper end: 3, then the 5 s cap
        (RetryConfig(max_attempts=3, initial_delay_ms=1000, max_delay_ms=5000, jitter="decorrelated"), 10.0, 38.0),
        # a budget: no retry starts later than 5 s after the first attempt
        (RetryConfig(max_attempts=4, initial_delay_ms=1000, max_delay_ms=5000, retry_budget_ms=5000), 10.0, 15.0),
        (RetryConfig(max_attempts=1), 30.0, 30.0),
    ],
)
def test_worst_case_seconds_bounds_every_attempt_and_delay(config, attempt_timeout_s, expected):
    assert worst_case_seconds(config, attempt_timeout_s) == pytest.approx(expected)


def test_worst_case_seconds_is_never_exceeded_by_drawn_delays():
    config = RetryConfig(
        max_attempts=7, initial_delay_ms=200, max_delay_ms=2500, backoff_factor=3.0, jitter="decorrelated"
    )
    bound = worst_case_seconds(config, 0.0)
    rng = random.Random(5)
    for _ in range(500):
        previous, total = None, 0.0
        for n in range(1, config.max_attempts):
            previous = backoff_delay(config, n, previous, rng)
            total += previous
        assert total <= bound

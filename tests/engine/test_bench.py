"""The benchmark function (wrapped by `manage.py bench policy`): shape in the default run, target under -m benchmark."""

from __future__ import annotations

import pytest

from policies.engine.bench import run_policy_benchmark


def test_benchmark_shape() -> None:
    result = run_policy_benchmark(40)
    assert result["unit"] == "microseconds"
    scenarios = result["scenarios"]
    assert isinstance(scenarios, dict)
    assert set(scenarios) == {"10_grants", "50000_grants"}
    for scenario in scenarios.values():
        assert set(scenario["mixed"]) == {"median_us", "p99_us", "mean_us"}
        assert set(scenario["paths"]) == {"key_policy", "identity_policy", "grant", "denied"}
    with pytest.raises(ValueError, match="at least 1"):
        run_policy_benchmark(0)


@pytest.mark.benchmark
def test_decision_time_target() -> None:
    """Median decision under 10 microseconds, flat from 10 to 50,000 grants (issue 3)."""
    result = run_policy_benchmark(20_000)
    scenarios = result["scenarios"]
    assert isinstance(scenarios, dict)
    small = scenarios["10_grants"]["mixed"]["median_us"]
    large = scenarios["50000_grants"]["mixed"]["median_us"]
    assert small < 10, result
    assert large < 10, result
    assert large < 2 * small + 1, result

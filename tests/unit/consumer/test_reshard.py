"""The reshard plan: each UpdateShardCount call within Kinesis's x2 / half rule, ending at the target."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumer.reshard import MAX_SHARDS, plan
from readings.errors import ConfigError


@given(st.integers(1, 5000), st.integers(1, 5000))
def test_every_step_is_allowed_and_the_plan_ends_at_the_target(current: int, target: int) -> None:
    steps = plan(current, target)
    counts = [current, *steps]
    for before, after in zip(counts, counts[1:], strict=False):
        assert after <= 2 * before and 2 * after >= before
    assert counts[-1] == target
    # As few calls as the rule allows: the ratio halves or doubles at most once per call.
    ratio = max(target / current, current / target)
    assert len(steps) <= math.ceil(math.log2(ratio)) + (1 if target < current else 0)


def test_examples() -> None:
    assert plan(2, 2) == []
    assert plan(2, 4) == [4]
    assert plan(2, 9) == [4, 8, 9]
    assert plan(9, 2) == [5, 3, 2]


@pytest.mark.parametrize("target", [0, -1, MAX_SHARDS + 1])
def test_impossible_targets_are_refused(target: int) -> None:
    with pytest.raises(ConfigError):
        plan(2, target)

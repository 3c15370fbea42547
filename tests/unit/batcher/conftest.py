"""Factories for the batcher tests: readings at readable times, batches with persisted state.

Every fixture here is a stateless function, session-scoped so hypothesis tests can take it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime

import pytest

from batcher import BatchResult, DeviceState, RegisterRules, compute_batch
from readings.models import Reading

DEVICE = "box-0001"
RULES = RegisterRules(tolerance_wh=1, max_power_w=100_000)
DAY = "2026-11-27"
"""The day ``at("13:30")`` falls on; keys below are written by hand, not derived from code."""


def at(when: str) -> int:
    """Epoch ms of ``"13:30"``, ``"13:30:15"`` (on ``DAY``) or a full ``"2026-11-28T00:15"`` (UTC)."""
    text = when if "T" in when else f"{DAY}T{when}"
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def make_reading(
    seq: int,
    when: str | int,
    energy_wh: float,
    *,
    power_w: float | None = None,
    device_id: str = DEVICE,
) -> Reading:
    ts_ms = at(when) if isinstance(when, str) else when
    return Reading(device_id=device_id, seq=seq, ts_ms=ts_ms, energy_wh=energy_wh, power_w=power_w)


def persist(states: Mapping[str, DeviceState]) -> dict[str, DeviceState]:
    """The states as the consumer would reload them: through ``to_dict``, JSON and ``from_dict``."""
    return {d: DeviceState.from_dict(json.loads(json.dumps(s.to_dict()))) for d, s in states.items()}


def run_batch(readings: Iterable[Reading], prior: Mapping[str, DeviceState] | None = None) -> BatchResult:
    return compute_batch(list(readings), persist(prior or {}), RULES)


def run_batches(
    batches: Iterable[Iterable[Reading]], prior: Mapping[str, DeviceState] | None = None
) -> list[BatchResult]:
    """Each batch in turn, carrying every device's persisted state to the next one."""
    states = dict(prior or {})
    results = []
    for batch in batches:
        result = run_batch(batch, states)
        states.update(result.states)
        results.append(result)
    return results


@pytest.fixture(scope="session")
def reading() -> Callable[..., Reading]:
    return make_reading


@pytest.fixture(scope="session")
def batch() -> Callable[..., BatchResult]:
    return run_batch


@pytest.fixture(scope="session")
def batches() -> Callable[..., list[BatchResult]]:
    return run_batches


@pytest.fixture(scope="session")
def at_ms() -> Callable[[str], int]:
    return at

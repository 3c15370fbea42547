"""How complete a device's readings are, per interval: what is missing, and for how long it was silent.

Between two consecutive readings of a device (in ``seq`` order, on its time base) lies a
*step*. A step tells three things, each spread over the hours it covers:

- ``seq_gaps``: the seqs between its two readings that never arrived (the box numbered them,
  so they were taken and lost or are still on their way);
- ``missing``: the readings the interval should have had and did not get: the seq gaps, or,
  across a step longer than the silence limit, what the device's cadence says it should have
  taken if that is more (a box that was off takes no readings and leaves no seq gap);
- ``silent_ms``: the time inside steps longer than the silence limit (the energy there is
  spread across the silence: an *estimated* interval).

The missing readings of a step are placed at evenly spaced instants inside it, so each hour
gets a whole number of them. A step with seq gaps is kept (a ``Gap``, for the late window) so
a late reading that fills one of its seqs replaces it by the two steps it makes: its figures
are taken back and the halves' are added, exactly. A gap filled by a spool drain after an
outage so ends with nothing missing, no silence and full completeness, not a permanent hole.

The cadence is learnt from the device's consecutive seqs (a moving average of their spacing,
silences left out);
``expected`` = received + missing, so completeness = received / expected.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

HOUR_MS = 3_600_000
DEFAULT_SILENCE_LIMIT_MS = 15 * 60_000
MAX_GAPS = 64
MIN_SPACING_MS = 1_000
"""A step can hide at most one reading per second of its length: a leap of seq numbers far
beyond that (a box's counter jumping) is not taken for billions of lost readings."""


@dataclass(frozen=True, slots=True)
class Gap:
    """One step and what it counted: its readings' seqs and times and the figures it spread."""

    start_seq: int
    start_ms: int
    end_seq: int
    end_ms: int
    cadence_ms: int | None
    """The cadence the figures were computed with (kept, so they can be taken back exactly)."""
    seq_gaps: int
    missing: int
    silent: bool

    def to_list(self) -> list[Any]:
        return [
            self.start_seq,
            self.start_ms,
            self.end_seq,
            self.end_ms,
            self.cadence_ms,
            self.seq_gaps,
            self.missing,
            int(self.silent),
        ]

    @classmethod
    def from_list(cls, values: list[Any]) -> Gap:
        start_seq, start_ms, end_seq, end_ms, cadence_ms, seq_gaps, missing, silent = values
        return cls(
            int(start_seq),
            int(start_ms),
            int(end_seq),
            int(end_ms),
            None if cadence_ms is None else int(cadence_ms),
            int(seq_gaps),
            int(missing),
            bool(silent),
        )


def step(start_seq: int, start_ms: int, end_seq: int, end_ms: int, cadence_ms: int | None, limit_ms: int) -> Gap:
    """The figures of the step between two consecutive readings."""
    span_ms = max(0, end_ms - start_ms)
    cap = span_ms // MIN_SPACING_MS + 1
    seq_gaps = min(max(0, end_seq - start_seq - 1), cap)
    silent = span_ms > limit_ms
    missing = seq_gaps
    if silent and cadence_ms:
        missing = max(missing, min(round(span_ms / cadence_ms) - 1, cap))
    return Gap(start_seq, start_ms, end_seq, end_ms, cadence_ms, seq_gaps, missing, silent)


def learn_cadence(cadence_ms: int | None, spacing_ms: int) -> int:
    """The cadence after one more spacing between consecutive seqs (a moving average, 1/8)."""
    return spacing_ms if cadence_ms is None else (7 * cadence_ms + spacing_ms) // 8


def spread(gap: Gap) -> Iterator[tuple[int, int, int, int]]:
    """``(hour_start_ms, seq_gaps, missing, silent_ms)`` of each hour the step covers."""
    start, end = gap.start_ms, gap.end_ms
    hour = start - start % HOUR_MS
    last = max(start, end)
    while True:
        nxt = hour + HOUR_MS
        silent_ms = max(0, min(nxt, end) - max(hour, start)) if gap.silent else 0
        seq_gaps = _placed(gap.seq_gaps, start, end, hour, nxt)
        missing = _placed(gap.missing, start, end, hour, nxt)
        if seq_gaps or missing or silent_ms:
            yield hour, seq_gaps, missing, silent_ms
        if nxt > last:
            return
        hour = nxt


def _placed(count: int, start: int, end: int, low: int, high: int) -> int:
    """How many of ``count`` instants evenly spaced inside (start, end) fall in [low, high)."""
    if count <= 0:
        return 0
    span = end - start
    if span <= 0:
        return count if low <= end < high else 0
    return _before(count, start, span, high) - _before(count, start, span, low)


def _before(count: int, start: int, span: int, t: int) -> int:
    # Instant j (1..count) lies at start + j * span / (count + 1); those before t number
    # ceil((t - start) * (count + 1) / span) - 1, within 0..count.
    if t <= start:
        return 0
    ahead = -(-(t - start) * (count + 1) // span) - 1
    return max(0, min(count, ahead))


def quality(samples: int, energy_wh: float, silent_ms: int) -> str:
    """NEM12's flag of an interval: ``A`` actual, ``E`` estimated (energy spread across a
    silence), ``N`` no data."""
    if silent_ms > 0:
        return "E"
    return "A" if samples or energy_wh else "N"

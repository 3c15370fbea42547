"""Which sequence numbers of one device were already counted: dedup across batches.

A device numbers its readings 1, 2, 3, … and the consumer normally sees them in order, so the
set is kept as a short list of closed intervals: ``[[1, 1021]]`` for a device with no gaps.
A late reading that was never seen falls into a gap and is accepted; a redelivered one falls
inside an interval and is a duplicate.

The list is bounded: past ``max_intervals`` the two oldest intervals are joined, which closes
the oldest gap. A reading that arrives later still in that gap is then taken for a duplicate;
it stays in the raw archive, and since late readings carry no energy only ``samples`` can miss
it. The bound keeps the device's ``latest`` item small whatever a box sends.
"""

from __future__ import annotations

from bisect import bisect_right

DEFAULT_MAX_INTERVALS = 64


class SeenSeqs:
    __slots__ = ("_intervals", "max_intervals")

    def __init__(self, intervals: list[list[int]] | None = None, max_intervals: int = DEFAULT_MAX_INTERVALS) -> None:
        self._intervals: list[list[int]] = [list(iv) for iv in (intervals or [])]
        self.max_intervals = max_intervals

    def __contains__(self, seq: int) -> bool:
        i = bisect_right(self._intervals, [seq, float("inf")]) - 1
        return i >= 0 and self._intervals[i][0] <= seq <= self._intervals[i][1]

    def add(self, seq: int) -> bool:
        """Record ``seq``; False when it was already there."""
        ivs = self._intervals
        i = bisect_right(ivs, [seq, float("inf")]) - 1
        if i >= 0 and ivs[i][0] <= seq <= ivs[i][1]:
            return False
        joins_left = i >= 0 and ivs[i][1] == seq - 1
        joins_right = i + 1 < len(ivs) and ivs[i + 1][0] == seq + 1
        if joins_left and joins_right:
            ivs[i][1] = ivs[i + 1][1]
            del ivs[i + 1]
        elif joins_left:
            ivs[i][1] = seq
        elif joins_right:
            ivs[i + 1][0] = seq
        else:
            ivs.insert(i + 1, [seq, seq])
            if len(ivs) > self.max_intervals:
                ivs[0][1] = ivs[1][1]
                del ivs[1]
        return True

    def add_next(self, seq: int) -> bool:
        """Record ``seq`` if it follows the highest seq seen (the common case, one comparison);
        False, and nothing recorded, otherwise."""
        ivs = self._intervals
        if ivs and ivs[-1][1] == seq - 1:
            ivs[-1][1] = seq
            return True
        return False

    def has_gap(self, low: int, high: int) -> bool:
        """True when some seq strictly between ``low`` and ``high`` was not seen."""
        if high - low < 2:
            return False
        i = bisect_right(self._intervals, [low + 1, float("inf")]) - 1
        return not (i >= 0 and self._intervals[i][0] <= low + 1 and self._intervals[i][1] >= high - 1)

    def copy(self) -> SeenSeqs:
        copied = SeenSeqs.__new__(SeenSeqs)
        copied._intervals = [[lo, hi] for lo, hi in self._intervals]
        copied.max_intervals = self.max_intervals
        return copied

    def to_list(self) -> list[list[int]]:
        return [list(iv) for iv in self._intervals]

    def __repr__(self) -> str:
        return f"SeenSeqs({self._intervals!r})"

"""Energy from a meter's cumulative register, reading by reading.

A device has an import register (OBIS 1.8.0, ``energy_wh``) and may have an export register
(OBIS 2.8.0, ``energy_export_wh``); each has its own ``RegisterState`` and the same rules,
applied independently. Rules, for one register, taken in ``seq`` order:

- the first reading ever is the baseline and counts nothing;
- otherwise the energy is register minus the reference (the previous accepted register);
- a reading with a lower ``seq`` than the newest seen is late. When it falls inside a counted
  span whose readings left seqs unseen between them (the span's *gap*), it **re-splits** the
  span: the span's energy stays the same, and the pieces before and after the late reading
  move to the intervals its time shows (``late``). One that comes before the register's first
  reading becomes the baseline and counts the rise up to the old one. A register that rises
  steadily gets exactly what in-order arrival would have given it. Spans with gaps and the
  first reading are kept for ``late_window_ms`` of the device's time base; a late reading
  outside all of them counts no energy, only a sample;
- a decrease of at most ``tolerance_wh`` is noise: nothing counted, the higher reference kept;
- a larger decrease makes the reading *suspect*; it is held until the next reading decides:
  back at or above the reference (x -> 0 -> x+d) means a **glitch** (the low reading counts
  nothing, the energy is (x+d) - x); continuing from the low value means a **reset**, and the
  low reading, the first of a new cycle, counts its own register value;
- a rise of more than ``max_power_w`` x elapsed time is a **jump**: held and flagged, never
  counted; counting resumes from whichever value the following readings continue;
- after a reset or a jump the reference before it is kept as the *anchor* for
  ``anchor_window_ms``: a reading that continues from the anchor, by more than everything
  counted since, shows the register never left its old cycle (a glitch or a spike that lasted
  several readings). It is a **glitch**; what the anchor shows minus what was counted since is
  counted, so the low or high readings in between never add the whole register.

Elapsed time is measured on the device's time base, which never moves backwards (see
``batcher.batch``): a clock stepped back cannot lengthen the span a rise is allowed over.

The suspect reading, the anchor and the spans with gaps are part of the device state, so they
hold across batches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from batcher.completeness import DEFAULT_SILENCE_LIMIT_MS
from batcher.seen import SeenSeqs
from batcher.state import Point, RegisterState, Span, Suspicion

MS_PER_HOUR = 3_600_000
DEFAULT_ANCHOR_WINDOW_MS = 24 * MS_PER_HOUR
DEFAULT_LATE_WINDOW_MS = 48 * MS_PER_HOUR
MAX_SPANS = 64
"""Spans with gaps kept per register at most (the oldest go first); ``SeenSeqs`` keeps no more
gaps than this either."""


@dataclass(frozen=True, slots=True)
class RegisterRules:
    tolerance_wh: float = 1.0
    max_power_w: float = 100_000.0
    anchor_window_ms: int = DEFAULT_ANCHOR_WINDOW_MS
    late_window_ms: int = DEFAULT_LATE_WINDOW_MS
    silence_limit_ms: int = DEFAULT_SILENCE_LIMIT_MS
    """A step between two readings longer than this is a silence (``batcher.completeness``)."""

    def __post_init__(self) -> None:
        # Floats whatever was given: the bounds are float arithmetic on every path (an int power
        # times an elapsed time would be exact integer arithmetic, and round elsewhere).
        object.__setattr__(self, "tolerance_wh", float(self.tolerance_wh))
        object.__setattr__(self, "max_power_w", float(self.max_power_w))

    def max_rise_wh(self, start_ms: int, end_ms: int) -> float:
        return self.max_power_w * max(0, end_ms - start_ms) / MS_PER_HOUR + self.tolerance_wh


EnergySink = Callable[[float, int, int], None]
"""Receives ``(energy_wh, start_ms, end_ms)`` for every counted delta."""
FlagSink = Callable[[str, int], None]
"""Receives ``(flag, ts_ms)``: ``reset``, ``glitch``, ``jump``, ``clock_step``, ``seq_restart``
or ``seq_conflict`` and the reading's time."""


def _held_flag(s: Point) -> str:
    """The flag of a held reading that nothing continued: a low one was a glitch, a high one a jump."""
    return "jump" if s.kind is Suspicion.JUMP else "glitch"


class RegisterTracker:
    """Applies the register rules to one register's state, emitting energy spans and flags.

    ``energy`` receives what is counted; ``moved`` receives the pieces a late reading re-splits
    (a negative piece over the old span, positive ones over the new halves: they add up to
    nothing, so they are kept apart from what is counted).
    """

    def __init__(
        self,
        state: RegisterState,
        seen: SeenSeqs,
        rules: RegisterRules,
        energy: EnergySink,
        flag: FlagSink,
        moved: EnergySink | None = None,
    ) -> None:
        self.state = state
        self.seen = seen
        self.rules = rules
        self._sink = energy
        self._moved = moved or energy
        self._flag = flag

    def step(self, point: Point) -> None:
        """Take the next reading of the register, newer than every reading before it.

        ``point.ts_ms`` is the reading's time on the device's time base (never before the
        previous one).
        """
        st = self.state
        ts_ms = point.ts_ms
        if st.anchor is not None and ts_ms - st.anchor.ts_ms > self.rules.anchor_window_ms:
            st.anchor, st.since_anchor_wh = None, 0.0
        if st.spans:
            self._trim(ts_ms)
        if st.first is not None and ts_ms - st.first.ts_ms > self.rules.late_window_ms:
            st.first = None
        if st.ref is None:
            st.ref = st.first = point
        elif st.suspect is None:
            self._compare(point)
        else:
            self._decide(st.suspect, point)

    def late(self, p: Point) -> bool:
        """Re-split the kept span a late reading falls in; False when none holds it."""
        spans = self.state.spans
        index = next((i for i, span in enumerate(spans) if span.start.seq < p.seq < span.end.seq), None)
        if index is None:
            first = self.state.first
            return first is not None and p.seq < first.seq and self._before_first(p, first)
        span = spans[index]
        a, b, total = span.start, span.end, span.energy_wh
        to_end, from_start = b.energy_wh - p.energy_wh, p.energy_wh - a.energy_wh
        if 0 <= from_start <= total:
            before = from_start  # on the cycle the span began in (the common case)
        elif 0 <= to_end <= total:
            before = total - to_end  # on the cycle the span ended in (after a reset inside it)
        else:
            return False  # a register value the span cannot hold: a sample only
        after = total - before
        ts_ms = min(max(p.ts_ms, a.ts_ms), b.ts_ms)
        mid = Point(p.seq, ts_ms, p.energy_wh)
        self._moved(-total, a.ts_ms, b.ts_ms)
        self._moved(before, a.ts_ms, ts_ms)
        self._moved(after, ts_ms, b.ts_ms)
        halves = [Span(a, mid, before), Span(mid, b, after)]
        spans[index : index + 1] = [h for h in halves if h.energy_wh > 0 and self.seen.has_gap(h.start.seq, h.end.seq)]
        return True

    def _before_first(self, p: Point, first: Point) -> bool:
        """A late reading before the baseline becomes the baseline, counting up to the old one."""
        if p.ts_ms > first.ts_ms or not self._continues(p, first):
            return False
        self.state.first = p
        rise = first.energy_wh - p.energy_wh
        if rise > 0:
            if self.state.anchor is not None:
                self.state.since_anchor_wh += rise
            self._count(rise, p, first)
        return True

    def _trim(self, now_ms: int) -> None:
        oldest = now_ms - self.rules.late_window_ms
        kept = [s for s in self.state.spans if s.end.ts_ms >= oldest and self.seen.has_gap(s.start.seq, s.end.seq)]
        self.state.spans = kept[-MAX_SPANS:]

    def _count(self, energy_wh: float, start: Point, end: Point) -> None:
        """Count energy over [start, end]; keep the span while a late reading may split it."""
        self._sink(energy_wh, start.ts_ms, end.ts_ms)
        if self.seen.has_gap(start.seq, end.seq):
            self.state.spans.append(Span(start, end, energy_wh))
            if len(self.state.spans) > MAX_SPANS:
                del self.state.spans[0]

    def _energy(self, energy_wh: float, start: Point, end: Point) -> None:
        if self.state.anchor is not None:
            self.state.since_anchor_wh += energy_wh
        self._count(energy_wh, start, end)

    def _set_anchor(self, ref: Point) -> None:
        # An anchor already held is older: the register may still return to that cycle.
        if self.state.anchor is None:
            self.state.anchor, self.state.since_anchor_wh = ref, 0.0

    def _returns_to_anchor(self, p: Point) -> bool:
        """Take ``p`` as the register back on its cycle before the last reset or jump."""
        st, ref, anchor = self.state, self.state.ref, self.state.anchor
        assert ref is not None
        if anchor is None or not self._continues(anchor, p):
            return False
        # Far from the present cycle, by more than all it counted: the readings since the
        # anchor were a glitch or a spike. (A real new cycle that climbs back to the old value
        # has counted about that much by then, so it is not taken for one.)
        if abs(p.energy_wh - ref.energy_wh) <= st.since_anchor_wh + self.rules.tolerance_wh:
            return False
        self._flag("glitch", p.ts_ms)
        owed_wh = (p.energy_wh - anchor.energy_wh) - st.since_anchor_wh
        st.anchor, st.since_anchor_wh = None, 0.0
        if owed_wh > 0:
            self._count(owed_wh, ref, p)
        st.ref = p
        return True

    def _continues(self, base: Point, p: Point) -> bool:
        rise = p.energy_wh - base.energy_wh
        return -self.rules.tolerance_wh <= rise <= self.rules.max_rise_wh(base.ts_ms, p.ts_ms)

    def _compare(self, p: Point) -> None:
        ref = self.state.ref
        assert ref is not None
        if self._returns_to_anchor(p):
            return
        rise = p.energy_wh - ref.energy_wh
        if rise < -self.rules.tolerance_wh:
            self.state.suspect = Point(p.seq, p.ts_ms, p.energy_wh, Suspicion.DECREASE)
        elif rise > self.rules.max_rise_wh(ref.ts_ms, p.ts_ms):
            self.state.suspect = Point(p.seq, p.ts_ms, p.energy_wh, Suspicion.JUMP)
        else:
            self._advance(p)

    def _advance(self, p: Point) -> None:
        ref = self.state.ref
        assert ref is not None
        rise = p.energy_wh - ref.energy_wh
        if rise >= 0:
            if rise > 0:
                self._energy(rise, ref, p)
            self.state.ref = p
        # A small decrease is noise: keep the higher reference.

    def _decide(self, s: Point, p: Point) -> None:
        ref = self.state.ref
        assert ref is not None
        self.state.suspect = None
        # A low reading is judged against the old value first (x -> 0 -> x is a glitch); a high
        # one against itself first (a register that stays up was a jump, not consumption).
        back_to_ref = self._continues(ref, p)
        from_suspect = self._continues(s, p)
        if s.kind is Suspicion.DECREASE and back_to_ref:
            self._flag("glitch", s.ts_ms)
            self._advance(p)
        elif from_suspect:
            self._set_anchor(ref)
            low = Point(s.seq, s.ts_ms, s.energy_wh)
            if s.kind is Suspicion.DECREASE:
                self._flag("reset", s.ts_ms)
                # A new cycle counts from 0: the low reading brings its own register value.
                if s.energy_wh <= self.rules.max_rise_wh(ref.ts_ms, s.ts_ms):
                    if s.energy_wh > 0:
                        self._energy(s.energy_wh, ref, low)
                else:
                    self._flag("jump", s.ts_ms)
            else:
                self._flag("jump", s.ts_ms)
            self.state.ref = low
            self._advance(p)
        elif back_to_ref:
            # Only a jump gets here (a low reading that came back was taken above): a spike that
            # came back is still an impossible rise, counted under ``jumps``.
            self._flag(_held_flag(s), s.ts_ms)
            self._advance(p)
        else:
            # Neither value is continued: the held reading was a glitch (or a spike, if it was a
            # jump) and the new one is judged against the reference on its own.
            self._flag(_held_flag(s), s.ts_ms)
            self._compare(p)

"""Energy from a meter's cumulative import register, reading by reading.

Rules, for one device, taken in ``seq`` order:

- the first reading ever is the baseline and counts nothing;
- otherwise the energy is register minus the reference (the previous accepted register);
- a reading with a lower ``seq`` than the newest seen is late: it counts no energy (the span it
  falls in was already counted from the readings around it), only a sample;
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

The suspect reading and the anchor are part of the device state, so they hold across batches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from batcher.seen import SeenSeqs
from readings.models import Reading

MS_PER_HOUR = 3_600_000
DEFAULT_ANCHOR_WINDOW_MS = 24 * MS_PER_HOUR


class Suspicion(StrEnum):
    DECREASE = "decrease"
    JUMP = "jump"


@dataclass(frozen=True, slots=True)
class RegisterRules:
    tolerance_wh: float = 1.0
    max_power_w: float = 100_000.0
    anchor_window_ms: int = DEFAULT_ANCHOR_WINDOW_MS

    def max_rise_wh(self, start_ms: int, end_ms: int) -> float:
        return self.max_power_w * max(0, end_ms - start_ms) / MS_PER_HOUR + self.tolerance_wh


@dataclass(slots=True)
class Point:
    """A register value at an instant (``seq`` kept for the logs)."""

    seq: int
    ts_ms: int
    energy_wh: float
    kind: Suspicion | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seq": self.seq, "ts_ms": self.ts_ms, "energy_wh": self.energy_wh}
        if self.kind is not None:
            out["kind"] = str(self.kind)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Point | None:
        if not d:
            return None
        kind = d.get("kind")
        return cls(int(d["seq"]), int(d["ts_ms"]), float(d["energy_wh"]), Suspicion(kind) if kind else None)


@dataclass(slots=True)
class DeviceState:
    """What the consumer keeps of a device between batches (its ``latest`` item)."""

    seen: SeenSeqs = field(default_factory=SeenSeqs)
    """The seqs counted in the device's current numbering (since its last seq restart)."""
    newest: Point | None = None
    """The reading with the highest ``seq`` so far; its ``ts_ms`` is the device's time base."""
    newest_raw_ts_ms: int | None = None
    """The newest reading's own ``ts`` when a clock step put it behind the time base."""
    newest_power_w: float | None = None
    ref: Point | None = None
    """The register value the next delta is measured from."""
    suspect: Point | None = None
    anchor: Point | None = None
    """The reference before the last reset or jump, while the register may still return to it."""
    since_anchor_wh: float = 0.0
    """Energy counted since ``anchor``."""
    prev_seen: SeenSeqs | None = None
    """The seqs of the numbering before the last seq restart (redeliveries of it are duplicates)."""
    epoch_ts_ms: int | None = None
    """When the current numbering began (the time of the restart that started it)."""

    def copy(self) -> DeviceState:
        """An independent copy: points are never changed in place, only the seq sets are."""
        return DeviceState(
            self.seen.copy(),
            self.newest,
            self.newest_raw_ts_ms,
            self.newest_power_w,
            self.ref,
            self.suspect,
            self.anchor,
            self.since_anchor_wh,
            None if self.prev_seen is None else self.prev_seen.copy(),
            self.epoch_ts_ms,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seen": self.seen.to_list()}
        for name in ("newest", "ref", "suspect", "anchor"):
            point = getattr(self, name)
            if point is not None:
                out[name] = point.to_dict()
        for name in ("newest_raw_ts_ms", "newest_power_w", "epoch_ts_ms"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.anchor is not None:
            out["since_anchor_wh"] = self.since_anchor_wh
        if self.prev_seen is not None:
            out["prev_seen"] = self.prev_seen.to_list()
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> DeviceState:
        if not d:
            return cls()
        power = d.get("newest_power_w")
        raw_ts, epoch_ts = d.get("newest_raw_ts_ms"), d.get("epoch_ts_ms")
        prev = d.get("prev_seen")
        return cls(
            seen=SeenSeqs([[int(lo), int(hi)] for lo, hi in d.get("seen", [])]),
            newest=Point.from_dict(d.get("newest")),
            newest_raw_ts_ms=None if raw_ts is None else int(raw_ts),
            newest_power_w=None if power is None else float(power),
            ref=Point.from_dict(d.get("ref")),
            suspect=Point.from_dict(d.get("suspect")),
            anchor=Point.from_dict(d.get("anchor")),
            since_anchor_wh=float(d.get("since_anchor_wh", 0.0)),
            prev_seen=None if prev is None else SeenSeqs([[int(lo), int(hi)] for lo, hi in prev]),
            epoch_ts_ms=None if epoch_ts is None else int(epoch_ts),
        )


EnergySink = Callable[[float, int, int], None]
"""Receives ``(energy_wh, start_ms, end_ms)`` for every counted delta."""
FlagSink = Callable[[str, int], None]
"""Receives ``(flag, ts_ms)``: ``reset``, ``glitch``, ``jump``, ``clock_step``, ``seq_restart``
or ``seq_conflict`` and the reading's time."""


def _held_flag(s: Point) -> str:
    """The flag of a held reading that nothing continued: a low one was a glitch, a high one a jump."""
    return "jump" if s.kind is Suspicion.JUMP else "glitch"


class RegisterTracker:
    """Applies the register rules to one device's state, emitting energy spans and flags."""

    def __init__(self, state: DeviceState, rules: RegisterRules, energy: EnergySink, flag: FlagSink) -> None:
        self.state = state
        self.rules = rules
        self._sink = energy
        self._flag = flag

    def step(self, r: Reading, ts_ms: int) -> None:
        """Take the next reading of the device, newer than every reading before it.

        ``ts_ms`` is the reading's time on the device's time base (never before the previous one).
        """
        point = Point(r.seq, ts_ms, r.energy_wh)
        st = self.state
        if st.anchor is not None and ts_ms - st.anchor.ts_ms > self.rules.anchor_window_ms:
            st.anchor, st.since_anchor_wh = None, 0.0
        if st.ref is None:
            st.ref = point
        elif st.suspect is None:
            self._compare(point)
        else:
            self._decide(st.suspect, point)

    def _energy(self, energy_wh: float, start_ms: int, end_ms: int) -> None:
        if self.state.anchor is not None:
            self.state.since_anchor_wh += energy_wh
        self._sink(energy_wh, start_ms, end_ms)

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
            self._sink(owed_wh, ref.ts_ms, p.ts_ms)
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
                self._energy(rise, ref.ts_ms, p.ts_ms)
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
            if s.kind is Suspicion.DECREASE:
                self._flag("reset", s.ts_ms)
                # A new cycle counts from 0: the low reading brings its own register value.
                if s.energy_wh <= self.rules.max_rise_wh(ref.ts_ms, s.ts_ms):
                    if s.energy_wh > 0:
                        self._energy(s.energy_wh, ref.ts_ms, s.ts_ms)
                else:
                    self._flag("jump", s.ts_ms)
            else:
                self._flag("jump", s.ts_ms)
            self.state.ref = Point(s.seq, s.ts_ms, s.energy_wh)
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

"""What the consumer keeps of a device between batches: its numbering, time base, registers, alerts.

Plain data, serialised into the shard's snapshot (``to_dict``/``from_dict``). The rules that
change it are in ``batcher.batch`` (numbering, time base), ``batcher.registers`` (registers),
``batcher.completeness`` (steps and gaps) and ``batcher.alerts`` (alerts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from batcher.completeness import Gap
from batcher.seen import SeenSeqs


class Suspicion(StrEnum):
    DECREASE = "decrease"
    JUMP = "jump"


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


@dataclass(frozen=True, slots=True)
class Span:
    """Energy counted between two readings that have seqs unseen between them."""

    start: Point
    end: Point
    energy_wh: float

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start.to_dict(), "end": self.end.to_dict(), "energy_wh": self.energy_wh}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Span:
        start, end = Point.from_dict(d["start"]), Point.from_dict(d["end"])
        assert start is not None and end is not None
        return cls(start, end, float(d["energy_wh"]))


@dataclass(slots=True)
class RegisterState:
    """One register's state: where the next delta is measured from, and what is held."""

    ref: Point | None = None
    """The register value the next delta is measured from."""
    suspect: Point | None = None
    anchor: Point | None = None
    """The reference before the last reset or jump, while the register may still return to it."""
    since_anchor_wh: float = 0.0
    """Energy counted since ``anchor``."""
    spans: list[Span] = field(default_factory=list)
    """Counted spans a late reading may still re-split, oldest first."""
    first: Point | None = None
    """The register's first reading, the baseline, while a late reading may still come before it."""

    def copy(self) -> RegisterState:
        """An independent copy: points and spans are never changed in place, only replaced."""
        return RegisterState(self.ref, self.suspect, self.anchor, self.since_anchor_wh, list(self.spans), self.first)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in ("ref", "suspect", "anchor", "first"):
            point = getattr(self, name)
            if point is not None:
                out[name] = point.to_dict()
        if self.anchor is not None:
            out["since_anchor_wh"] = self.since_anchor_wh
        if self.spans:
            out["spans"] = [span.to_dict() for span in self.spans]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RegisterState:
        return cls(
            ref=Point.from_dict(d.get("ref")),
            suspect=Point.from_dict(d.get("suspect")),
            anchor=Point.from_dict(d.get("anchor")),
            since_anchor_wh=float(d.get("since_anchor_wh", 0.0)),
            spans=[Span.from_dict(span) for span in d.get("spans", [])],
            first=Point.from_dict(d.get("first")),
        )


@dataclass(frozen=True, slots=True)
class Episode:
    """An alert that fired and has not cleared: when, and the values it fired with."""

    fired_ms: int
    values: dict[str, Any] = field(default_factory=dict)

    def to_list(self) -> list[Any]:
        return [self.fired_ms, self.values]

    @classmethod
    def from_list(cls, d: list[Any]) -> Episode:
        return cls(int(d[0]), dict(d[1]))


@dataclass(slots=True)
class AlertState:
    """A device's alerts between batches (``batcher.alerts``); changed by replacing, never in place."""

    heard_ms: int | None = None
    """The arrival time of the device's newest record that carried a reading."""
    power_ts_ms: int | None = None
    """The meter time of the newest reading the power rule has seen."""
    above_ms: int | None = None
    """Since when every reading's power was above the threshold (None: the last one was not)."""
    active: dict[str, Episode] = field(default_factory=dict)
    """Kind -> the alert of that kind that fired and has not cleared."""
    budget_day_ms: int | None = None
    """The UTC day whose budget alert fired last (a day fires once)."""
    register_hours: dict[str, list[int]] = field(default_factory=dict)
    """Flag -> the UTC hours it fired in, ascending, those the late window still reaches."""
    power_limit_w: float | None = None
    daily_budget_kwh: float | None = None
    """The device's own thresholds (the registry's, as they were before this batch); None: the default."""

    def copy(self) -> AlertState:
        return AlertState(
            self.heard_ms,
            self.power_ts_ms,
            self.above_ms,
            dict(self.active),
            self.budget_day_ms,
            {flag: list(hours) for flag, hours in self.register_hours.items()},
            self.power_limit_w,
            self.daily_budget_kwh,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in ("heard_ms", "power_ts_ms", "above_ms", "budget_day_ms", "power_limit_w", "daily_budget_kwh"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.active:
            out["active"] = {kind: episode.to_list() for kind, episode in self.active.items()}
        if self.register_hours:
            out["register_hours"] = self.register_hours
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> AlertState | None:
        if d is None:
            return None

        def opt(name: str, kind: type) -> Any:
            value = d.get(name)
            return None if value is None else kind(value)

        return cls(
            heard_ms=opt("heard_ms", int),
            power_ts_ms=opt("power_ts_ms", int),
            above_ms=opt("above_ms", int),
            active={kind: Episode.from_list(e) for kind, e in d.get("active", {}).items()},
            budget_day_ms=opt("budget_day_ms", int),
            register_hours={flag: [int(h) for h in hours] for flag, hours in d.get("register_hours", {}).items()},
            power_limit_w=opt("power_limit_w", float),
            daily_budget_kwh=opt("daily_budget_kwh", float),
        )


@dataclass(slots=True)
class DeviceState:
    """What the consumer keeps of a device between batches."""

    seen: SeenSeqs = field(default_factory=SeenSeqs)
    """The seqs counted in the device's current numbering (since its last seq restart)."""
    newest: Point | None = None
    """The reading with the highest ``seq`` so far; its ``ts_ms`` is the device's time base."""
    newest_raw_ts_ms: int | None = None
    """The newest reading's own ``ts`` when a clock step put it behind the time base."""
    newest_power_w: float | None = None
    register: RegisterState = field(default_factory=RegisterState)
    """The import register (``energy_wh``)."""
    export: RegisterState | None = None
    """The export register (``energy_export_wh``), once the device sent one."""
    prev_seen: SeenSeqs | None = None
    """The seqs of the numbering before the last seq restart (redeliveries of it are duplicates)."""
    epoch_ts_ms: int | None = None
    """When the current numbering began (the time of the restart that started it)."""
    cadence_ms: int | None = None
    """The spacing of the device's readings, learnt from consecutive seqs."""
    gaps: list[Gap] = field(default_factory=list)
    """Steps with seq gaps a late reading may still fill, oldest first."""
    head: tuple[int, int] | None = None
    """``(seq, ts_ms)`` of the first reading of the numbering, while one may still come before it."""
    alerts: AlertState | None = None
    """The device's alerts; None until the alert rules first saw the device."""

    def copy(self) -> DeviceState:
        """An independent copy: points are never changed in place, only the seq sets are."""
        return DeviceState(
            self.seen.copy(),
            self.newest,
            self.newest_raw_ts_ms,
            self.newest_power_w,
            self.register.copy(),
            None if self.export is None else self.export.copy(),
            None if self.prev_seen is None else self.prev_seen.copy(),
            self.epoch_ts_ms,
            self.cadence_ms,
            list(self.gaps),
            self.head,
            self.alerts,  # replaced, never changed in place
        )

    def to_dict(self) -> dict[str, Any]:
        # The import register's fields sit at the top level, where they always were.
        out: dict[str, Any] = {"seen": self.seen.to_list(), **self.register.to_dict()}
        if self.newest is not None:
            out["newest"] = self.newest.to_dict()
        for name in ("newest_raw_ts_ms", "newest_power_w", "epoch_ts_ms", "cadence_ms"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.gaps:
            out["gaps"] = [gap.to_list() for gap in self.gaps]
        if self.head is not None:
            out["head"] = list(self.head)
        if self.export is not None:
            out["export"] = self.export.to_dict()
        if self.prev_seen is not None:
            out["prev_seen"] = self.prev_seen.to_list()
        if self.alerts is not None:
            out["alerts"] = self.alerts.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> DeviceState:
        if not d:
            return cls()
        power = d.get("newest_power_w")
        raw_ts, epoch_ts = d.get("newest_raw_ts_ms"), d.get("epoch_ts_ms")
        prev, export, cadence = d.get("prev_seen"), d.get("export"), d.get("cadence_ms")
        return cls(
            seen=SeenSeqs([[int(lo), int(hi)] for lo, hi in d.get("seen", [])]),
            newest=Point.from_dict(d.get("newest")),
            newest_raw_ts_ms=None if raw_ts is None else int(raw_ts),
            newest_power_w=None if power is None else float(power),
            register=RegisterState.from_dict(d),
            export=None if export is None else RegisterState.from_dict(export),
            prev_seen=None if prev is None else SeenSeqs([[int(lo), int(hi)] for lo, hi in prev]),
            epoch_ts_ms=None if epoch_ts is None else int(epoch_ts),
            cadence_ms=None if cadence is None else int(cadence),
            gaps=[Gap.from_list(gap) for gap in d.get("gaps", [])],
            head=None if d.get("head") is None else (int(d["head"][0]), int(d["head"][1])),
            alerts=AlertState.from_dict(d.get("alerts")),
        )

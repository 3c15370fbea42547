"""A producer that keeps writing a fleet's readings to the stream while a test does its worst.

It remembers every payload it put and every sequence number the stream accepted, so the test
can compare the store with an independent computation over exactly what was sent.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from devstack.loadgen import Fleet, put_records

RECEIVED_MS = 1_795_000_000_000
"""A fixed arrival instant (in the past), so the buckets are the same in every run."""


@dataclass
class Producer:
    kinesis: Any
    stream: str
    fleet: Fleet
    per_message: int = 5
    period_s: float = 0.5
    t0_ms: int = RECEIVED_MS - 10 * 86_400_000
    payloads: list[bytes] = field(default_factory=list)
    sequence_numbers: list[str] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    waves: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wave(self) -> None:
        """One message per device, its next ``per_message`` readings."""
        self.waves += 1
        ts_ms = self.t0_ms + self.waves * self.per_message * self.fleet.interval_ms
        batch = self.fleet.messages(ts_ms, self.per_message, RECEIVED_MS)
        accepted: list[str] = []
        put_records(self.kinesis, self.stream, batch, accepted=accepted)
        self.payloads.extend(data for _, data in batch)
        self.sequence_numbers.extend(accepted)

    def start(self) -> Producer:
        def loop() -> None:
            try:
                while not self._stop.wait(self.period_s):
                    self.wave()
            except BaseException as exc:  # noqa: BLE001 - reported by stop()
                self.errors.append(exc)

        self._thread = threading.Thread(target=loop, name="producer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        if self.errors:
            raise RuntimeError("the producer failed") from self.errors[0]

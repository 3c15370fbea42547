"""The bridge's dead-letter file: messages it acknowledges without putting them on the stream.

IoT Core runs a rule's error action for a message the rule cannot evaluate; the bridge's twin
of that action is this file. A message goes here when the rule fails (``bridge.rule``) or when
one of the bridge's paho callbacks raised while handling it, and only then is it acked, so a
message the bridge cannot forward is neither redelivered in a loop nor lost without a trace.

Layout: ``<directory>/<UTC day of received_ms>.jsonl``, one JSON object per line::

    {"topic": "energy/consumption/box-0001", "mid": 17, "received_ms": 1795000000123,
     "reason": "not_encodable", "error": null, "payload_encoding": "utf-8",
     "payload": "{\"x\": [[[…", "payload_bytes": 560, "truncated": false}

``payload`` is the payload as UTF-8 text when it is valid UTF-8, else base64
(``payload_encoding``); at most ``MAX_PAYLOAD_BYTES`` of it are kept (``truncated``), the
broker's ``message_size_limit``, so no line outgrows what the broker accepts. ``payload_bytes``
is the size of the whole payload.

Guarantee: ``write`` returns only after the lines are flushed and fsynced; it raises
``DeadLetterError`` otherwise, and the caller must not ack those messages. A message written
and then redelivered (its ack was lost with the connection) is written again: readers dedup
on (topic, payload) if they need to.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from readings.errors import WattstreamError

MAX_PAYLOAD_BYTES = 131_072
"""``message_size_limit`` of devstack/resources/mosquitto/mosquitto.conf.template (a test keeps them equal)."""


class DeadLetterError(WattstreamError):
    """Dead letters could not be written; their messages must stay unacknowledged."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    mid: int
    received_ms: int
    reason: str
    payload: bytes
    error: str | None = None
    """The exception text when a callback raised (``reason`` ``callback_error``)."""


def _line(letter: DeadLetter, max_payload_bytes: int) -> str:
    kept = letter.payload[:max_payload_bytes]
    try:
        text, encoding = kept.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(kept).decode("ascii"), "base64"
    return json.dumps(
        {
            "topic": letter.topic,
            "mid": letter.mid,
            "received_ms": letter.received_ms,
            "reason": letter.reason,
            "error": letter.error,
            "payload_encoding": encoding,
            "payload": text,
            "payload_bytes": len(letter.payload),
            "truncated": len(kept) < len(letter.payload),
        },
        ensure_ascii=True,
    )


@dataclass(frozen=True, slots=True)
class DeadLetterFile:
    """Appends dead letters to the day files in ``directory`` (see the module docstring)."""

    directory: Path
    max_payload_bytes: int = MAX_PAYLOAD_BYTES

    def path_for(self, received_ms: int) -> Path:
        day = dt.datetime.fromtimestamp(received_ms / 1000, tz=dt.UTC).date()
        return self.directory / f"{day.isoformat()}.jsonl"

    def write(self, letters: Sequence[DeadLetter]) -> None:
        """Append ``letters``; returns once they are on disk (see the module docstring)."""
        by_path: dict[Path, list[str]] = {}
        for letter in letters:
            try:
                path = self.path_for(letter.received_ms)
            except (OverflowError, OSError, ValueError):
                path = self.directory / "undated.jsonl"  # a clock that gave nonsense
            by_path.setdefault(path, []).append(_line(letter, self.max_payload_bytes))
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            for path, lines in by_path.items():
                with path.open("a", encoding="ascii") as fh:
                    fh.write("".join(f"{line}\n" for line in lines))
                    fh.flush()
                    os.fsync(fh.fileno())
        except OSError as exc:
            raise DeadLetterError(f"cannot write dead letters to {self.directory}: {exc}") from exc

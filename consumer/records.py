"""A record taken from the stream, decoded, waiting for its batch's flush; its archive lines."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from readings import Reading, Rejection

MAX_REJECTIONS_LISTED = 20


@dataclass(slots=True)
class PendingRecord:
    """A record taken from the stream, decoded, waiting for its batch's flush."""

    sequence_number: str
    partition_key: str
    arrival_ms: int
    data: bytes
    readings: list[Reading] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    def raw_line(self, shard_id: str) -> dict[str, Any]:
        line: dict[str, Any] = {
            "shard_id": shard_id,
            "sequence_number": self.sequence_number,
            "partition_key": self.partition_key,
            "approximate_arrival_ms": self.arrival_ms,
        }
        try:
            line["data"] = self.data.decode("utf-8")
        except UnicodeDecodeError:
            line["data_b64"] = base64.b64encode(self.data).decode("ascii")
        return line

    def dead_letter_line(self, shard_id: str) -> dict[str, Any] | None:
        """The record's one dead-letter line, or None when nothing of it was rejected.

        The record's bytes are stored once, whatever the number of rejected readings; the
        first ``MAX_REJECTIONS_LISTED`` rejections are listed (reason, detail, reading index)
        and ``rejections_total`` counts them all. ``reason``, ``detail`` and ``reading_index``
        repeat the first one, so a query by reason needs no unnesting.
        """
        if not self.rejections:
            return None
        first = self.rejections[0]
        line = self.raw_line(shard_id)
        line.update(reason=str(first.reason), detail=first.detail, rejected_at_ms=self.arrival_ms)
        if first.index is not None:
            line["reading_index"] = first.index
        line["rejections_total"] = len(self.rejections)
        line["rejections"] = [
            {"reason": str(r.reason), "detail": r.detail, **({} if r.index is None else {"reading_index": r.index})}
            for r in self.rejections[:MAX_REJECTIONS_LISTED]
        ]
        return line

"""Positions in a Kinesis shard.

A ``SequenceNumber`` is the decimal string Kinesis gives each record of a shard: it grows
along the shard, compares as a number (never as text: its width varies) and is the only
position the consumer stores, in the batch manifest, the snapshot key and the items' batch
marker. ``seq`` elsewhere in wattstream is the box's own reading counter, never a position.
"""

from __future__ import annotations

from typing import NewType

SequenceNumber = NewType("SequenceNumber", str)

MARKER_WIDTH = 64


def position_marker(sequence_number: str | int) -> str:
    """A sequence number as a fixed-width string that sorts like the number."""
    return str(int(sequence_number)).zfill(MARKER_WIDTH)


def is_past(sequence_number: str, checkpoint: str | None) -> bool:
    """True when ``sequence_number`` lies after ``checkpoint`` (KCL's sentinels such as
    ``TRIM_HORIZON`` and no checkpoint at all lie before every record)."""
    if checkpoint is None or not checkpoint.isdigit():
        return True
    return int(sequence_number) > int(checkpoint)

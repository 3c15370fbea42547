from typing import Any

from readings.models import Reading

def plain_readings(
    device_id: str, readings: list[Any], earliest_ok_ms: int, latest_ok_ms: int
) -> tuple[list[Reading], list[tuple[int, int]]] | None: ...
def plain_record(
    doc: Any, partition_key: str | None, fallback_received_ms: int, future_tolerance_ms: int, max_age_ms: int
) -> tuple[str, list[Reading], list[tuple[int, int]], int] | None: ...

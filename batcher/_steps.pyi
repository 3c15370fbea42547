from typing import Any

from readings.models import Reading

def common_steps(run: Any, readings: list[Reading], index: int) -> int: ...

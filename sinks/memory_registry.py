"""The device registry in memory (``sinks.registry.RegistryStore``'s promises, ``sinks.ports``).

Its items are the very wire items the AWS store writes, in a ``MemoryTable`` that may be the
aggregates table of a ``sinks.memory.MemoryBackend``, as in AWS. ``sinks.memory`` re-exports it.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from readings.errors import RegistryError
from sinks.dynamo import decode_item
from sinks.registry import PARTITION, DeviceInfo, check_device_id, matches, update_parts

if TYPE_CHECKING:
    from sinks.memory import MemoryTable


class MemoryRegistry:
    """One entry per device under ``registry#``, in a ``MemoryTable``."""

    def __init__(self, table: MemoryTable | None = None) -> None:
        if table is None:
            # Here, not at the top: sinks.memory imports this module to re-export the class.
            from sinks.memory import MemoryTable

            table = MemoryTable()
        self.table = table

    def get(self, device_id: str) -> DeviceInfo | None:
        stored = self.table.get((PARTITION, check_device_id(device_id)))
        return None if stored is None else DeviceInfo.from_item(decode_item(stored))

    def get_many(self, device_ids: Iterable[str]) -> dict[str, DeviceInfo]:
        found = {}
        for device_id in sorted({check_device_id(d) for d in device_ids}):
            info = self.get(device_id)
            if info is not None:
                found[device_id] = info
        return found

    def put(self, info: DeviceInfo, *, overwrite: bool = True) -> None:
        # The check and the write under the table's lock: one atomic step, as the conditional put is.
        with self.table.lock:
            if not overwrite and self.table.get((PARTITION, info.device_id)) is not None:
                raise RegistryError(f"{info.device_id} is registered already; `set` changes it")
            self.table.put(info.to_item())

    def update(self, device_id: str, /, **changes: Any) -> DeviceInfo:
        set_, remove = update_parts(check_device_id(device_id), changes)
        key = (PARTITION, device_id)
        with self.table.lock:
            if self.table.get(key) is None:
                raise RegistryError(f"{device_id} is not registered")
            if set_ or remove:
                self.table.update(key, set_=set_, remove=remove)
            info = self.get(device_id)
        assert info is not None
        return info

    def remove(self, device_id: str) -> bool:
        key = (PARTITION, check_device_id(device_id))
        with self.table.lock:
            found = self.table.get(key) is not None
            self.table.delete(key)
        return found

    def list(self, site: str | None = None, tag: str | None = None) -> builtins.list[DeviceInfo]:
        entries = (
            DeviceInfo.from_item(decode_item(wire))
            for (partition, _), wire in self.table.wire_items().items()
            if partition == PARTITION
        )
        return [info for info in entries if matches(info, site, tag)]

"""Both backends have every method of each port, with the port's very signature."""

from __future__ import annotations

import inspect

import pytest

from sinks import memory, ports
from sinks.aggregates import AggregateStore
from sinks.archive import Archive
from sinks.live import LiveView
from sinks.manifest import ManifestStore
from sinks.ranges import BucketRanges
from sinks.registry import RegistryStore
from sinks.snapshot import SnapshotStore

IMPLEMENTATIONS = {
    ports.ManifestPort: (ManifestStore, memory.MemoryManifests),
    ports.ArchivePort: (Archive, memory.MemoryArchive),
    ports.SnapshotPort: (SnapshotStore, memory.MemorySnapshots),
    ports.AggregatePort: (AggregateStore, memory.MemoryAggregates),
    ports.LivePort: (LiveView, memory.MemoryLiveView),
    ports.RangePort: (BucketRanges, memory.MemoryBucketRanges),
    ports.RegistryPort: (RegistryStore, memory.MemoryRegistry),
}
CASES = [(port, cls) for port, classes in IMPLEMENTATIONS.items() for cls in classes]


def methods(port: type) -> list[str]:
    return [name for name, value in vars(port).items() if callable(value) and not name.startswith("_")]


def test_every_port_has_methods() -> None:
    assert all(methods(port) for port in IMPLEMENTATIONS)


@pytest.mark.parametrize(("port", "cls"), CASES, ids=lambda x: x.__name__)
def test_the_implementation_has_the_port_s_signatures(port: type, cls: type) -> None:
    for name in methods(port):
        assert str(inspect.signature(getattr(cls, name))) == str(inspect.signature(getattr(port, name))), name

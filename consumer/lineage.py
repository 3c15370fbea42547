"""A shard's place in the stream's resharding history, from one ListShards at initialize.

A split or merge closes shards and opens children; KCL starts a child's processor only after
its parents reached their end, so the child takes its devices' state from the parents' final
snapshots. The descendants tell a writer which items were written after it by the shards that
replaced it (a zombie must not overwrite those).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import structlog

log = structlog.get_logger("wattstream.consumer")


@dataclass(frozen=True, slots=True)
class Lineage:
    shard_id: str
    parents: tuple[str, ...] = ()
    ancestors: frozenset[str] = field(default_factory=frozenset)
    descendants: frozenset[str] = field(default_factory=frozenset)
    hash_range: tuple[int, int] | None = None
    """The shard's hash keys, inclusive; None when the stream does not list the shard."""

    def owns(self, hash_key: int) -> bool:
        return self.hash_range is None or self.hash_range[0] <= hash_key <= self.hash_range[1]


def shard_lineage(kinesis: Any, stream: str, shard_id: str) -> Lineage:
    """The lineage of ``shard_id``; an empty one when the stream cannot be listed."""
    try:
        shards = list_shards(kinesis, stream)
    except Exception as exc:  # noqa: BLE001 - without the listing the shard has no known relatives
        log.warning("shard_lineage_unavailable", stream=stream, error=repr(exc)[:300])
        return Lineage(shard_id)
    parents_of = parents_by_shard(shards)
    me = next((s for s in shards if s["ShardId"] == shard_id), None)
    if me is None:
        return Lineage(shard_id)

    def walk_up(start: str) -> set[str]:
        seen: set[str] = set()
        todo = list(parents_of.get(start, ()))
        while todo:
            shard = todo.pop()
            if shard not in seen:
                seen.add(shard)
                todo.extend(parents_of.get(shard, ()))
        return seen

    descendants = {s for s in parents_of if shard_id in walk_up(s)}
    hash_range = me["HashKeyRange"]
    return Lineage(
        shard_id,
        parents_of.get(shard_id, ()),
        frozenset(walk_up(shard_id)),
        frozenset(descendants),
        (int(hash_range["StartingHashKey"]), int(hash_range["EndingHashKey"])),
    )


def list_shards(kinesis: Any, stream: str) -> list[dict[str, Any]]:
    """Every shard the stream lists (ListShards, all pages): the open ones and those closed
    within the stream's retention; a shard closed longer ago is no longer listed."""
    shards: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"StreamName": stream}
    while True:
        response = kinesis.list_shards(**kwargs)
        shards.extend(response.get("Shards", []))
        token = response.get("NextToken")
        if not token:
            return shards
        kwargs = {"NextToken": token}


def parents_by_shard(shards: list[dict[str, Any]]) -> dict[str, tuple[str, ...]]:
    """Shard id -> its parents (none, one for a split, two for a merge), for the shards listed."""
    return {
        s["ShardId"]: tuple(p for p in (s.get("ParentShardId"), s.get("AdjacentParentShardId")) if p) for s in shards
    }

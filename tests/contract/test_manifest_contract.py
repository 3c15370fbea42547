"""The manifest port (``sinks.ports.ManifestPort``): claims, epochs and the fencing of begin_batch."""

from __future__ import annotations

import pytest

from readings.errors import FencedError
from sinks.dynamo import encode_item
from sinks.manifest import Manifest

SHARD = "shardId-000000000003"
SEQ = "49680617152851519470963732905516059121142655817896427522"
BATCH = dict(
    first_sequence_number="49680617152851519470963732905516059121142655817896400000",
    last_sequence_number=SEQ,
    records=16,
    raw_key="raw/dt=2026-11-27/hour=13/shard=s/1-2.jsonl.gz",
    trigger="size",
    prev_state_key=None,
    state_key=f"state/shard={SHARD}/{SEQ}.json.gz",
)


def test_a_shard_never_claimed_has_no_manifest(manifests) -> None:
    assert manifests.store.read(SHARD) is None


def test_the_first_claim_is_epoch_one_and_reads_back(manifests) -> None:
    claimed = manifests.store.claim(SHARD, "worker-a")
    assert claimed == Manifest(SHARD, 1, "worker-a")
    assert manifests.store.read(SHARD) == claimed


def test_every_claim_raises_the_epoch_by_one_the_same_owner_s_too(manifests) -> None:
    epochs = [manifests.store.claim(SHARD, owner).epoch for owner in ("a", "b", "b", "a")]
    assert epochs == [1, 2, 3, 4]
    assert manifests.store.read(SHARD).owner == "a"


def test_begin_batch_records_the_batch_over_the_claim(manifests) -> None:
    claimed = manifests.store.claim(SHARD, "worker-a")
    begun = manifests.store.begin_batch(claimed, **BATCH)
    assert begun == Manifest(SHARD, 1, "worker-a", **BATCH)
    assert manifests.store.read(SHARD) == begun
    assert isinstance(begun.first_sequence_number, str) and isinstance(manifests.store.read(SHARD).records, int)


def test_begin_batch_twice_writes_the_same_manifest(manifests) -> None:
    claimed = manifests.store.claim(SHARD, "worker-a")
    first = manifests.store.begin_batch(claimed, **BATCH)
    assert manifests.store.begin_batch(claimed, **BATCH) == first == manifests.store.read(SHARD)


def test_a_new_claim_sees_the_batch_the_previous_owner_began(manifests) -> None:
    old = manifests.store.claim(SHARD, "worker-a")
    manifests.store.begin_batch(old, **BATCH)
    new = manifests.store.claim(SHARD, "worker-b")
    assert new == Manifest(SHARD, 2, "worker-b", **BATCH)
    assert new.pending_after(BATCH["first_sequence_number"]) and not new.pending_after(SEQ)


def test_a_batch_begun_after_another_claim_is_fenced_and_writes_nothing(manifests) -> None:
    zombie = manifests.store.claim(SHARD, "worker-a")
    owner = manifests.store.claim(SHARD, "worker-b")
    with pytest.raises(FencedError):
        manifests.store.begin_batch(zombie, **BATCH)
    assert manifests.store.read(SHARD) == owner


def test_the_same_owner_claiming_again_fences_its_older_claim(manifests) -> None:
    older = manifests.store.claim(SHARD, "worker-a")
    manifests.store.claim(SHARD, "worker-a")
    with pytest.raises(FencedError):
        manifests.store.begin_batch(older, **BATCH)


def test_the_owner_is_part_of_the_condition(manifests) -> None:
    claimed = manifests.store.claim(SHARD, "worker-a")
    forged = Manifest(SHARD, claimed.epoch, "worker-z")
    with pytest.raises(FencedError):
        manifests.store.begin_batch(forged, **BATCH)
    assert manifests.store.read(SHARD) == claimed


def test_a_batch_for_a_shard_never_claimed_is_fenced(manifests) -> None:
    with pytest.raises(FencedError):
        manifests.store.begin_batch(Manifest(SHARD, 1, "worker-a"), **BATCH)
    assert manifests.store.read(SHARD) is None


def test_fields_left_none_read_back_as_none(manifests) -> None:
    claimed = manifests.store.claim(SHARD, "worker-a")
    manifests.store.begin_batch(claimed, **{**BATCH, "prev_state_key": "state/x", "trigger": None})
    manifests.store.begin_batch(claimed, **{**BATCH, "prev_state_key": None})
    stored = manifests.store.read(SHARD)
    assert stored.prev_state_key is None and stored.trigger == "size"


def test_shards_are_claimed_apart(manifests) -> None:
    a = manifests.store.claim("shardId-a", "worker-a")
    manifests.store.claim("shardId-b", "worker-b")
    assert manifests.store.begin_batch(a, **BATCH).epoch == 1
    assert manifests.store.read("shardId-b") == Manifest("shardId-b", 1, "worker-b")


def test_a_manifest_in_the_older_layout_is_read_and_replayed(manifests) -> None:
    # Written by a consumer that named the positions first_seq and last_seq: a batch it left
    # in flight must still be found and replayed after an upgrade.
    legacy = {"shard_id": SHARD, "epoch": 4, "owner": "worker-old", "records": 16}
    legacy |= {"first_seq": BATCH["first_sequence_number"], "last_seq": SEQ, "state_key": BATCH["state_key"]}
    manifests.seed(encode_item(legacy))
    claimed = manifests.store.claim(SHARD, "worker-new")
    assert (claimed.epoch, claimed.first_sequence_number, claimed.last_sequence_number) == (
        5,
        BATCH["first_sequence_number"],
        SEQ,
    )
    assert claimed.pending_after(BATCH["first_sequence_number"]) and not claimed.pending_after(SEQ)
    begun = manifests.store.begin_batch(claimed, **BATCH)
    assert manifests.store.read(SHARD) == begun

"""The aggregates port (``sinks.ports.AggregatePort``): each item's writer markers decide every write."""

from __future__ import annotations

import pytest

from batcher import BucketAggregate
from readings.errors import FencedError
from sinks.aggregates import Writer, bucket_item
from sinks.dynamo import encode_item
from sinks.position import position_marker

SHARD = "shardId-000000000003"
HOUR = ("box-0001", "h#2026-11-27T13")
DAY = ("box-0001", "d#2026-11-27")
OTHER = ("box-0002", "h#2026-11-27T13")


def agg(energy_wh: float, samples: int = 1, power_w: float | None = 500.0, **flags: int) -> BucketAggregate:
    out = BucketAggregate(
        energy_wh=energy_wh,
        samples=samples,
        first_ts_ms=1_795_784_400_000,
        last_ts_ms=1_795_784_400_000 + samples,
        **flags,
    )
    if power_w is not None:
        out.power_samples, out.power_sum_w, out.power_max_w = samples, power_w * samples, power_w
    return out


def batch(seq: int, shard: str = SHARD, descendants: frozenset[str] = frozenset()) -> Writer:
    return Writer(shard, position_marker(seq), descendants)


def expected(key: tuple[str, str], figures: BucketAggregate, writer: Writer) -> dict:
    return {**bucket_item(*key, figures), "w": writer.shard_id, "s": writer.marker}


def by_key(subject) -> dict:
    return {(i["device_id"], i["bucket"]): i for i in subject.items()}


def test_closed_buckets_are_created_with_their_figures_and_the_writer(aggregates) -> None:
    writer = batch(200)
    closed = {HOUR: agg(0.1 + 0.2, 3, resets=1), DAY: agg(12.5, 40, power_w=None), OTHER: agg(0.0)}
    result = aggregates.store.write_closed(writer, closed)
    assert (result.written, result.skipped) == (3, 0)
    assert result.consumed_wcu > 0
    assert by_key(aggregates) == {key: expected(key, figures, writer) for key, figures in closed.items()}
    assert by_key(aggregates)[HOUR]["energy_wh"].hex() == (0.1 + 0.2).hex()
    assert by_key(aggregates)[HOUR]["power_mean_w"] == 500.0 and "power_mean_w" not in by_key(aggregates)[DAY]


def test_the_same_batch_again_is_skipped(aggregates) -> None:
    writer = batch(200)
    closed = {HOUR: agg(1.5), DAY: agg(2.5)}
    aggregates.store.write_closed(writer, closed)
    before = aggregates.items()
    again = aggregates.store.write_closed(writer, closed)
    assert (again.written, again.skipped) == (0, 2)
    assert aggregates.store.correct(writer, {HOUR: agg(9.0)}).skipped == 1
    assert aggregates.items() == before


def test_a_later_batch_adds_to_a_bucket_that_exists(aggregates) -> None:
    aggregates.store.write_closed(batch(200), {HOUR: agg(1.5, 2)})
    later = batch(300)
    result = aggregates.store.write_closed(later, {HOUR: agg(2.0, 1, power_w=900.0)})
    assert result.written == 1
    assert by_key(aggregates)[HOUR] == expected(HOUR, agg(1.5, 2).merge(agg(2.0, 1, power_w=900.0)), later)


def test_an_earlier_batch_after_a_later_one_is_fenced_and_changes_nothing(aggregates) -> None:
    aggregates.store.write_closed(batch(300), {HOUR: agg(1.5)})
    before = aggregates.items()
    with pytest.raises(FencedError):
        aggregates.store.write_closed(batch(200), {HOUR: agg(1.5)})
    with pytest.raises(FencedError):
        aggregates.store.correct(batch(200), {HOUR: agg(0.5)})
    assert aggregates.items() == before


def test_batches_compare_as_numbers_not_as_text(aggregates) -> None:
    aggregates.store.write_closed(batch(10), {HOUR: agg(1.0)})
    assert aggregates.store.correct(batch(9), {DAY: agg(1.0)}).written == 1  # another item: no conflict
    with pytest.raises(FencedError):
        aggregates.store.correct(batch(9), {HOUR: agg(1.0)})  # unpadded, "9" would sort after "10"
    assert aggregates.store.correct(batch(11), {HOUR: agg(1.0)}).written == 1


def test_a_writer_is_fenced_where_a_descendant_shard_wrote(aggregates) -> None:
    parent = batch(900, "shardId-parent", frozenset({"shardId-child"}))
    child = batch(100, "shardId-child")
    aggregates.store.write_closed(parent, {HOUR: agg(1.0)})
    aggregates.store.correct(child, {HOUR: agg(0.5)})  # an ancestor's item: the child adds to it
    assert by_key(aggregates)[HOUR] == expected(HOUR, agg(1.0).merge(agg(0.5)), child)
    before = aggregates.items()
    with pytest.raises(FencedError):
        aggregates.store.correct(parent, {HOUR: agg(1.0)})
    with pytest.raises(FencedError):
        aggregates.store.write_closed(parent, {HOUR: agg(1.0)})
    assert aggregates.items() == before


def test_an_unrelated_shard_adds_to_the_item(aggregates) -> None:
    aggregates.store.write_closed(batch(900, "shardId-a"), {HOUR: agg(1.0)})
    other = batch(100, "shardId-b")
    aggregates.store.write_closed(other, {HOUR: agg(2.0)})
    assert by_key(aggregates)[HOUR] == expected(HOUR, agg(1.0).merge(agg(2.0)), other)


def test_a_correction_adds_to_the_stored_figures_or_creates_the_item(aggregates) -> None:
    aggregates.store.write_closed(batch(200), {HOUR: agg(1.5, 2)})
    writer = batch(300)
    result = aggregates.store.correct(writer, {HOUR: agg(0.0, 1, power_w=None), OTHER: agg(4.0)})
    assert (result.written, result.skipped, result.read_units) == (2, 0, 2)
    items = by_key(aggregates)
    assert items[HOUR] == expected(HOUR, agg(1.5, 2).merge(agg(0.0, 1, power_w=None)), writer)
    assert items[OTHER] == expected(OTHER, agg(4.0), writer)


def test_nothing_to_write_writes_nothing(aggregates) -> None:
    assert aggregates.store.write_closed(batch(1), {}).written == 0
    assert aggregates.store.correct(batch(1), {}).written == 0
    assert aggregates.items() == []


def test_an_item_no_writer_stamped_is_overwritten_when_closed_but_added_to_when_corrected(aggregates) -> None:
    """What the port does not promise (see ``sinks.ports``): the two calls differ on such an item."""
    foreign = encode_item(bucket_item(*HOUR, agg(100.0, 10)))
    aggregates.seed(foreign)
    aggregates.store.write_closed(batch(200), {HOUR: agg(1.0)})
    assert by_key(aggregates)[HOUR] == expected(HOUR, agg(1.0), batch(200))

    aggregates.seed(foreign)
    aggregates.store.correct(batch(300), {HOUR: agg(1.0)})
    assert by_key(aggregates)[HOUR] == expected(HOUR, agg(100.0, 10).merge(agg(1.0)), batch(300))


def test_a_closed_store_refuses_writes(aggregates) -> None:
    aggregates.store.close()
    aggregates.store.close()
    with pytest.raises(RuntimeError):
        aggregates.store.write_closed(batch(1), {HOUR: agg(1.0)})
    with pytest.raises(RuntimeError):
        aggregates.store.correct(batch(1), {HOUR: agg(1.0)})
    assert aggregates.items() == []

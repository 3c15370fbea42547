"""SeenSeqs: which sequence numbers of a device were already counted, as bounded intervals."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from batcher import SeenSeqs


def seen_of(*seqs: int, max_intervals: int = 64) -> SeenSeqs:
    seen = SeenSeqs(max_intervals=max_intervals)
    for seq in seqs:
        seen.add(seq)
    return seen


class TestAdd:
    def test_first_add_is_new_second_is_duplicate(self) -> None:
        seen = SeenSeqs()
        assert seen.add(7) is True
        assert seen.add(7) is False
        assert 7 in seen

    def test_in_order_seqs_collapse_into_one_interval(self) -> None:
        assert seen_of(*range(1, 1022)).to_list() == [[1, 1021]]

    def test_gap_keeps_two_intervals(self) -> None:
        seen = seen_of(1, 2, 3, 6, 7)
        assert seen.to_list() == [[1, 3], [6, 7]]
        assert 4 not in seen and 5 not in seen and 8 not in seen and 0 not in seen

    def test_late_seq_that_was_never_seen_is_accepted(self) -> None:
        seen = seen_of(1, 2, 3, 6, 7)
        assert seen.add(5) is True
        assert seen.to_list() == [[1, 3], [5, 7]]

    def test_filling_the_gap_joins_both_sides(self) -> None:
        seen = seen_of(1, 2, 4, 5)
        assert seen.add(3) is True
        assert seen.to_list() == [[1, 5]]

    def test_seq_below_every_interval(self) -> None:
        seen = seen_of(10, 11)
        assert seen.add(9) is True
        assert seen.add(3) is True
        assert seen.to_list() == [[3, 3], [9, 11]]

    def test_duplicate_inside_an_interval(self) -> None:
        seen = seen_of(*range(100, 200))
        assert seen.add(150) is False
        assert seen.to_list() == [[100, 199]]

    def test_seq_zero(self) -> None:
        seen = seen_of(0, 1)
        assert 0 in seen
        assert seen.to_list() == [[0, 1]]


class TestBound:
    def test_past_the_bound_the_oldest_gap_is_closed(self) -> None:
        seen = seen_of(1, 3, 5, max_intervals=2)
        assert seen.to_list() == [[1, 3], [5, 5]]
        # The closed gap: a late 2 now counts as a duplicate (documented trade-off).
        assert 2 in seen
        assert seen.add(2) is False
        # The newer gap is still open.
        assert seen.add(4) is True

    def test_interval_list_never_exceeds_the_bound(self) -> None:
        seen = seen_of(*range(0, 1_000, 2), max_intervals=64)
        assert len(seen.to_list()) == 64
        assert seen.to_list()[-1] == [998, 998]

    def test_default_bound_is_kept_across_a_round_trip(self) -> None:
        seen = seen_of(*range(0, 1_000, 2))
        reloaded = SeenSeqs(seen.to_list())
        reloaded.add(1_001)
        assert len(reloaded.to_list()) <= 64


class TestRoundTrip:
    def test_to_list_copies(self) -> None:
        seen = seen_of(1, 2)
        snapshot = seen.to_list()
        snapshot[0][1] = 99
        assert 5 not in seen

    def test_constructor_copies_the_given_intervals(self) -> None:
        intervals = [[1, 5]]
        seen = SeenSeqs(intervals)
        seen.add(6)
        assert intervals == [[1, 5]]
        assert seen.to_list() == [[1, 6]]


seq_lists = st.lists(st.integers(min_value=0, max_value=300), max_size=200)


@settings(max_examples=200, deadline=None)
@given(seqs=seq_lists)
def test_matches_a_plain_set_while_under_the_bound(seqs: list[int]) -> None:
    seen = SeenSeqs(max_intervals=10_000)
    reference: set[int] = set()
    for seq in seqs:
        assert seen.add(seq) is (seq not in reference)
        reference.add(seq)
    for seq in range(-1, 302):
        assert (seq in seen) is (seq in reference)
    # Intervals: sorted, disjoint, not touching (else they would have been joined).
    ivs = seen.to_list()
    assert all(lo <= hi for lo, hi in ivs)
    assert all(a[1] + 1 < b[0] for a, b in zip(ivs, ivs[1:], strict=False))


@settings(max_examples=200, deadline=None)
@given(seqs=seq_lists, max_intervals=st.integers(min_value=1, max_value=8))
def test_bounded_set_never_forgets_and_stays_small(seqs: list[int], max_intervals: int) -> None:
    """The bound may wrongly call a never-seen seq a duplicate, never the other way round."""
    seen = SeenSeqs(max_intervals=max_intervals)
    added: set[int] = set()
    for seq in seqs:
        if seq in added:
            assert seen.add(seq) is False
        elif seen.add(seq):
            added.add(seq)
        assert len(seen.to_list()) <= max_intervals
    assert all(seq in seen for seq in added)
    # Only gaps below the newest interval are ever closed: the highest seq is exact.
    if seqs:
        assert seen.to_list()[-1][1] == max(seqs)

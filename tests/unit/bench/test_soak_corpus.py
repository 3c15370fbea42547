"""The soak's account of its hostile fleet, against the batcher on the same records in put order.

The account (``bench.soak_corpus``) knows nothing of the register rules; the batcher knows
nothing of the corpus. If either is wrong about resets, glitches, repeats or reordering, the
two disagree here, long before a soak run would say so.
"""

from __future__ import annotations

from collections import defaultdict

from batcher import RegisterRules, compute_batch
from bench.soak import latency_quantiles
from bench.soak_corpus import BEHAVIOURS, Corpus
from readings import decode_record

T0_MS = 1_795_000_000_000
RULES = RegisterRules(tolerance_wh=1.0, max_power_w=100_000)


def _through_the_batcher(corpus: Corpus, waves: int) -> tuple[dict[str, float], dict[tuple[str, str], int], dict]:
    records = []
    for w in range(waves):
        records += corpus.wave(T0_MS + (w + 1) * int(corpus.period_s * 1000))
    records += corpus.flush()
    readings = []
    for key, data in records:
        decoded = decode_record(data, fallback_received_ms=T0_MS, future_tolerance_ms=10**9, partition_key=key)
        assert not decoded.rejections
        readings += decoded.readings
    result = compute_batch(readings, {}, RULES)
    energy: dict[str, float] = defaultdict(float)
    samples: dict[tuple[str, str], int] = {}
    for (device_id, bucket), agg in result.aggregates.items():
        if bucket.startswith("d#"):
            energy[device_id] += agg.energy_wh
        else:
            samples[(device_id, bucket)] = agg.samples
    return energy, samples, {**result.stats.flags, "duplicates": result.stats.duplicates, "late": result.stats.late}


def test_the_account_matches_the_batcher_for_every_behaviour() -> None:
    corpus = Corpus(len(BEHAVIOURS) * 4, seed=3, start_ms=T0_MS)
    energy, samples, flags = _through_the_batcher(corpus, waves=80)
    expected = corpus.expected_energy_wh()
    wrong = {d: (round(energy[d], 3), round(e, 3)) for d, e in expected.items() if abs(energy[d] - e) > 1e-6}
    assert wrong == {}
    assert samples == corpus.expected_samples()
    # The corpus really does misbehave: resets, glitches, repeats and late readings are there.
    assert flags.get("reset", 0) == 4 and flags.get("glitch", 0) > 0
    assert flags["duplicates"] > 0 and flags["late"] > 0


def test_latency_spreads_each_batch_between_its_first_and_last_arrival() -> None:
    flushes = [
        {"records": 3, "arrival_first_ms": 0, "arrival_last_ms": 2000, "committed_ms": 4000},
        {"records": 1, "arrival_first_ms": 0, "arrival_last_ms": 0, "committed_ms": 10_000},
    ]
    # Latencies 4, 3, 2 and 10 s.
    assert latency_quantiles(flushes, (0.0, 0.5, 1.0)) == [2.0, 4.0, 10.0]

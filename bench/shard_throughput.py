"""Readings per second through one shard's record processor, flushes and checkpoints included.

The processor (``python -m consumer.processor``) is driven over the MultiLangDaemon's own
stdin/stdout protocol by this script, which plays the daemon with records prepared in memory:
the source is never the bottleneck (kinesis-mock serves ~1.3 MB/s, far below the processor).
The stores are real: DynamoDB and S3 on moto server, started here on free ports.

    .venv/bin/python -m bench.shard_throughput [--devices 100] [--records 20000] [--per-message 10]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from devstack.loadgen import Fleet
from devstack.localaws import LocalAws
from devstack.provision import create_bucket, create_table


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeDaemon:
    """The daemon's half of the multilang protocol, enough for one shard."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "consumer.processor"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(env["BENCH_LOG"], "ab"),  # noqa: SIM115 - owned by the child
            text=True,
            bufsize=1,
        )
        self.checkpoints = 0

    def send(self, message: dict) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()
        self._until_status(message["action"])

    def _until_status(self, action: str) -> None:
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("the processor exited; see the bench log")
            if not line.strip():
                continue  # amazon_kclpy writes a blank line before each message
            reply = json.loads(line)
            if reply["action"] == "status" and reply["responseFor"] == action:
                return
            if reply["action"] == "checkpoint":
                self.checkpoints += 1
                assert self.proc.stdin is not None
                answer = {
                    "action": "checkpoint",
                    "sequenceNumber": reply.get("sequenceNumber"),
                    "subSequenceNumber": reply.get("subSequenceNumber"),
                    "error": None,
                }
                self.proc.stdin.write(json.dumps(answer) + "\n")
                self.proc.stdin.flush()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--per-message", type=int, default=10)
    parser.add_argument("--max-records", type=int, default=10_000, help="WATTSTREAM_MAX_RECORDS")
    parser.add_argument("--call-records", type=int, default=1_000, help="records per processRecords call")
    args = parser.parse_args()

    fleet = Fleet(args.devices, interval_ms=10_000)
    now_ms = 1_795_000_000_000
    payloads: list[tuple[str, bytes]] = []
    k = 0
    while len(payloads) < args.records:
        k += 1
        payloads.extend(fleet.messages(now_ms - 10**9 + k * args.per_message * 10_000, args.per_message, now_ms))
    payloads = payloads[: args.records]
    base_seq = 49_680_617_152_851_519_470_963_732_905_516_059_121_142_655_817_896_427_522
    records = [
        {
            "action": "record",
            "data": base64.b64encode(data).decode(),
            "partitionKey": pk,
            "sequenceNumber": str(base_seq + i * 1000),
            "subSequenceNumber": 0,
            "approximateArrivalTimestamp": now_ms,
        }
        for i, (pk, data) in enumerate(payloads)
    ]
    readings = args.records * args.per_message
    megabytes = sum(len(d) for _, d in payloads) / 1e6

    work = Path(tempfile.mkdtemp(prefix="wattstream-bench-"))
    aws = LocalAws(port=_free_port(), kinesis_port=_free_port(), log_dir=work).start()
    try:
        suffix = uuid.uuid4().hex[:6]
        env = dict(
            os.environ,
            **aws.env,
            WATTSTREAM_AGGREGATES_TABLE=f"agg-{suffix}",
            WATTSTREAM_STATE_TABLE=f"state-{suffix}",
            WATTSTREAM_RAW_BUCKET=f"raw-{suffix}",
            WATTSTREAM_MAX_RECORDS=str(args.max_records),
            WATTSTREAM_MAX_AGE_S="3600",
            BENCH_LOG=str(work / "processor.log"),
        )
        os.environ.update(aws.env)
        from consumer.settings import Settings

        settings = Settings(aggregates_table=f"agg-{suffix}", state_table=f"state-{suffix}", raw_bucket=f"raw-{suffix}")
        dynamodb = settings.client("dynamodb")
        create_table(dynamodb, settings.aggregates_table, [("device_id", "HASH"), ("bucket", "RANGE")])
        create_table(dynamodb, settings.state_table, [("shard_id", "HASH")])
        create_bucket(settings.client("s3"), settings.raw_bucket, settings.region)

        daemon = FakeDaemon(env)
        daemon.send(
            {
                "action": "initialize",
                "shardId": "shardId-000000000000",
                "sequenceNumber": "TRIM_HORIZON",
                "subSequenceNumber": 0,
            }
        )
        started = time.perf_counter()
        for start in range(0, len(records), args.call_records):
            daemon.send(
                {
                    "action": "processRecords",
                    "records": records[start : start + args.call_records],
                    "millisBehindLatest": 0,
                }
            )
        daemon.send({"action": "shutdownRequested"})
        elapsed = time.perf_counter() - started
        daemon.send({"action": "leaseLost"})
        daemon.close()
    finally:
        aws.stop()

    print(
        f"records {len(records)}  readings {readings}  payload {megabytes:.1f} MB  devices {args.devices}  "
        f"batch {args.max_records} records"
    )
    print(
        f"one shard process: {readings / elapsed:,.0f} readings/s, {len(records) / elapsed:,.0f} records/s, "
        f"{megabytes / elapsed:.2f} MB/s  ({elapsed:.1f} s, {daemon.checkpoints} checkpoints, stores on moto)"
    )


if __name__ == "__main__":
    main()

"""Launching the KCL MultiLangDaemon: its properties file and its command line.

The daemon (Java) holds the leases, polls Kinesis and starts ``python -m consumer.processor``
once per shard; this module only writes what it needs and runs it.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from consumer.settings import Settings
from readings.errors import ConfigError

RESOURCES = Path(__file__).parent / "resources"
MAIN_CLASS = "software.amazon.kinesis.multilang.MultiLangDaemon"


def jars_dir(settings: Settings) -> Path:
    if settings.kcl_jars_dir:
        path = Path(settings.kcl_jars_dir)
    else:
        import amazon_kclpy

        path = Path(amazon_kclpy.__file__).parent / "jars"
    if not path.is_dir() or not any(path.glob("*.jar")):
        raise ConfigError(f"no KCL jars in {path}: run `make install` (or set WATTSTREAM_KCL_JARS_DIR)")
    return path


def properties(settings: Settings) -> dict[str, str]:
    """The daemon's properties; endpoints only when the AWS variables override them."""
    props = {
        "executableName": f"{shlex.quote(sys.executable)} -m consumer.processor",
        "streamName": settings.stream_name,
        "applicationName": settings.application_name,
        "workerId": settings.worker_id,
        "AwsCredentialsProvider": "DefaultCredentialsProvider",
        "regionName": settings.region,
        "initialPositionInStream": settings.initial_position,
        # Enhanced fan-out (the default) needs SubscribeToShard over HTTP/2 push, which the
        # emulators lack and a single consumer application does not need.
        "retrievalMode": "POLLING",
        "maxRecords": "10000",
        "idleTimeBetweenReadsInMillis": str(settings.idle_time_between_reads_ms),
        # Empty polls reach the processor, so a quiet shard's batch still flushes on age.
        "callProcessRecordsEvenForEmptyRecordList": "true",
        "failoverTimeMillis": str(settings.failover_time_ms),
        # KCL 3's graceful lease handoff moves a lease only after the old owner's processor
        # checkpoints in shutdownRequested or a timeout passes; a processor that cannot
        # checkpoint there (it is rebuilding an interrupted batch) and an owner killed mid-handoff
        # left a shard unassigned for minutes under chaos. Without it a moved lease is simply
        # lost by the old owner, which drops its batch; the new owner re-reads from the
        # checkpoint and the manifest fences any late write of the old one.
        "isGracefulLeaseHandoffEnabled": "false",
        "shutdownGraceMillis": str(settings.shutdown_grace_ms),
        "metricsLevel": settings.kcl_metrics_level,
    }
    for key, service in (("kinesisEndpoint", "kinesis"), ("dynamoDBEndpoint", "dynamodb")):
        endpoint = settings.endpoint(service)
        if endpoint:
            props[key] = endpoint
    if settings.kcl_metrics_level != "NONE":
        endpoint = settings.endpoint("cloudwatch")
        if endpoint:
            props["cloudWatchEndpoint"] = endpoint
    props.update(settings.kcl_extra_properties)
    return props


def write_properties(settings: Settings, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{k} = {v}" for k, v in properties(settings).items()]
    path.write_text("# written by `wattstream consume`; edits are overwritten\n" + "\n".join(lines) + "\n")
    return path


def command(settings: Settings, properties_file: Path) -> list[str]:
    return [
        settings.java,
        *shlex.split(settings.java_options),
        "-cp",
        f"{jars_dir(settings)}/*",
        MAIN_CLASS,
        "--properties-file",
        str(properties_file),
        "--log-configuration",
        str(RESOURCES / "logback.xml"),
    ]


def environment(settings: Settings, metrics_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    env.setdefault("AWS_REGION", settings.region)
    return env

"""Every setting of the consumer, in one frozen object read from ``WATTSTREAM_*`` variables.

Each value has a default that works against the local emulators (``wattstream local-aws``).
AWS endpoints are not wattstream settings: boto3 and the KCL daemon both take them from the
standard ``AWS_ENDPOINT_URL`` and ``AWS_ENDPOINT_URL_<SERVICE>`` variables, so the same
configuration runs against AWS, LocalStack and the local emulators.
"""

from __future__ import annotations

import os
import socket
from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from batcher import BatchPolicy, RegisterRules
from batcher.alerts import AlertRules


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WATTSTREAM_", frozen=True, extra="ignore")

    # Where the data lives.
    region: str = Field("us-east-1", description="AWS region of the stream, tables and bucket.")
    stream_name: str = Field("wattstream-readings", description="Kinesis stream the topic rule writes to.")
    shard_count: int = Field(2, ge=1, description="Shards `wattstream init` creates (provisioned mode).")
    application_name: str = Field(
        "wattstream-consumer", description="KCL application name; also the name of KCL's lease table."
    )
    aggregates_table: str = Field("wattstream-aggregates", description="DynamoDB table of hourly/daily aggregates.")
    state_table: str = Field("wattstream-consumer-state", description="DynamoDB table of batch manifests.")
    raw_bucket: str = Field("wattstream-raw", description="S3 bucket of the raw archive and the dead letters.")

    # Batch policy: flush every X seconds or Y records (or so many bytes), whichever first.
    max_records: int = Field(10_000, ge=1, description="Y: flush when a shard's batch holds this many records.")
    max_age_s: float = Field(30.0, gt=0, description="X: flush this many seconds after a batch's first record.")
    max_bytes: int = Field(8 * 1024 * 1024, ge=1, description="Flush when a batch's payloads reach this size.")

    # Meter register rules.
    register_tolerance_wh: float = Field(1.0, ge=0, description="A register decrease up to this is noise.")
    max_power_w: float = Field(100_000.0, gt=0, description="A rise above this power x elapsed time is a jump.")
    future_tolerance_s: float = Field(300.0, ge=0, description="Readings this far after receipt are rejected.")
    anchor_window_s: int = Field(
        86_400, ge=0, description="How long after a reset or jump a register may still return to its old cycle."
    )
    late_window_s: int = Field(
        172_800,
        ge=0,
        description="How long a device keeps the spans a late reading may re-split (its time base).",
    )
    silence_limit_s: int = Field(
        900, ge=1, description="A step between two readings longer than this is a silence (estimated energy)."
    )

    # Alerts, evaluated by the consumer at each flush from the state it holds (README: Alerts).
    alert_silence_min: float = Field(
        15.0, ge=0, description="`silent`: no reading from a device for more than this many minutes (0: off)."
    )
    alert_power_w: float | None = Field(
        None,
        gt=0,
        description="`power_high`: power above this many W for alert_power_min. Unset: only devices "
        "with a power_limit_w in the registry.",
    )
    alert_power_min: float = Field(5.0, gt=0, description="`power_high`: minutes the power must stay above.")
    alert_daily_budget_kwh: float | None = Field(
        None,
        gt=0,
        description="`budget`: a UTC day's energy above this many kWh. Unset: only devices with a "
        "daily_budget_kwh in the registry.",
    )
    alert_register: bool = Field(True, description="`register`: a register reset or jump (import or export).")
    alerts_topic_arn: str = Field(
        "", description="SNS topic alert events are published to; empty: recorded in the outbox, not published."
    )
    alert_registry_refresh_s: float = Field(
        300.0, ge=1, description="How often a shard's processor reloads the devices' thresholds from the registry."
    )

    # The KCL daemon.
    worker_id: str = Field(
        default_factory=socket.gethostname,
        description="KCL worker id. Keep it stable across restarts of one host: a restarted worker "
        "then takes its own leases back at once (a new id waits for KCL 3's 2-minute leader lock). "
        "`slot` (the ECS setting, where tasks have no stable name): claim the lowest free worker slot "
        "in the consumer-state table and run as `slot-<k>`, so a replacement task gets a dead task's id.",
    )
    worker_slot_ttl_s: float = Field(
        15.0,
        ge=3,
        description="With WATTSTREAM_WORKER_ID=slot: how long a slot stays claimed without a "
        "heartbeat (one every third of it). A replacement started sooner takes another slot.",
    )
    initial_position: str = Field("TRIM_HORIZON", description="Where a new application starts reading.")
    idle_time_between_reads_ms: int = Field(1000, ge=200, description="Polling pause of an idle shard.")
    failover_time_ms: int = Field(10_000, ge=1000, description="Lease expiry: how fast a dead worker's shards move.")
    shutdown_grace_ms: int = Field(20_000, ge=1000, description="Time a SIGTERM leaves the processors to flush.")
    java: str = Field("java", description="Java executable for the MultiLangDaemon.")
    java_options: str = Field("-Xms128m -Xmx512m", description="JVM options of the MultiLangDaemon.")
    kcl_metrics_level: str = Field("NONE", description="KCL's own CloudWatch metrics: NONE, SUMMARY or DETAILED.")
    kcl_extra_properties: dict[str, str] = Field(
        default_factory=dict, description='More KCL properties as JSON, e.g. {"maxRecords": "5000"}.'
    )
    kcl_jars_dir: str = Field("", description="Folder of the KCL jars; empty means amazon_kclpy's own.")
    work_dir: Path = Field(Path(".local/consumer"), description="Where `consume` writes its properties file.")

    # Observability.
    metrics_port: int = Field(9108, ge=0, description="Prometheus endpoint of this host (0 disables it).")
    metrics_dir: Path = Field(
        Path(".local/metrics"), description="prometheus-client multiprocess folder shared by the processors."
    )
    log_level: str = Field("INFO", description="structlog level: DEBUG, INFO, WARNING, ERROR.")
    flush_workers: int = Field(8, ge=1, le=64, description="Parallel DynamoDB writes during one flush.")
    live_groups: int = Field(
        100,
        ge=1,
        le=99_999,
        description="Items the real-time view packs the devices into: about one per 100 boxes keeps each "
        "item near 4 KB. Readers and the consumer must agree on it.",
    )

    # `wattstream serve`: the read-only API and the fleet page.
    api_token: SecretStr = Field(
        SecretStr(""),
        description="Bearer token every API request must carry (Authorization: Bearer <token>); empty: open.",
    )
    api_cors_origins: str = Field(
        "", description="Comma-separated origins a browser may call the API from (CORS); empty: none but its own."
    )

    @property
    def api_cors_origin_list(self) -> list[str]:
        return [origin.strip() for origin in self.api_cors_origins.split(",") if origin.strip()]

    @cached_property
    def batch_policy(self) -> BatchPolicy:
        return BatchPolicy(self.max_records, self.max_age_s, self.max_bytes)

    @cached_property
    def register_rules(self) -> RegisterRules:
        return RegisterRules(
            self.register_tolerance_wh,
            self.max_power_w,
            self.anchor_window_s * 1000,
            self.late_window_s * 1000,
            self.silence_limit_s * 1000,
        )

    @cached_property
    def alert_rules(self) -> AlertRules:
        return AlertRules(
            silence_ms=round(self.alert_silence_min * 60_000) or None,
            power_limit_w=self.alert_power_w,
            power_ms=round(self.alert_power_min * 60_000),
            daily_budget_kwh=self.alert_daily_budget_kwh,
            register=self.alert_register,
            late_window_ms=self.late_window_s * 1000,
        )

    def endpoint(self, service: str) -> str | None:
        """The endpoint override for ``service`` from the standard AWS variables, if any."""
        specific = os.environ.get(f"AWS_ENDPOINT_URL_{service.upper()}")
        return specific or os.environ.get("AWS_ENDPOINT_URL") or None

    def client(self, service: str):  # noqa: ANN201 - boto3 clients have no common base type
        """A boto3 client for ``service`` in the configured region (endpoints from the env)."""
        import boto3
        from botocore.config import Config

        # The service validates every request anyway; botocore's own pass costs more CPU than
        # the rest of a flush's store calls (a live item carries a hundred devices).
        config = Config(
            retries={"max_attempts": 10, "mode": "adaptive"}, max_pool_connections=64, parameter_validation=False
        )
        return boto3.client(service, region_name=self.region, config=config)

"""Settings of the bridge, read from ``WATTSTREAM_*`` variables (CLI options win).

The Kinesis endpoint is not a wattstream setting: boto3 reads ``AWS_ENDPOINT_URL_KINESIS`` /
``AWS_ENDPOINT_URL`` itself, so the same bridge talks to AWS or to an emulator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class BridgeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WATTSTREAM_", frozen=True, extra="ignore")

    stream_name: str = Field("wattstream-readings", description="Kinesis stream the rule writes to.")
    region: str = Field("us-east-1", description="AWS region of the stream.")
    bridge_host: str = Field("localhost", description="MQTT broker host.")
    bridge_port: int = Field(8883, description="MQTT broker TLS port.")
    bridge_protocol: Literal["3.1.1", "5"] = Field("3.1.1", description="MQTT protocol version.")
    bridge_client_id: str = Field(
        "wattstream-bridge",
        description="Client id of the persistent session (the local broker takes the certificate CN instead).",
    )
    bridge_cert_dir: Path = Field(Path(".local/certs"), description="ca.crt, bridge.crt, bridge.key.")
    bridge_batch_max_records: int = Field(500, ge=1, le=500, description="Records per PutRecords at most.")
    bridge_batch_max_wait_s: float = Field(0.2, ge=0, description="Longest a message waits for its batch.")
    bridge_reconnect_max_s: int = Field(10, ge=1, description="Longest reconnect delay to the broker.")
    bridge_metrics_port: int = Field(0, ge=0, description="Prometheus endpoint port (0 = off).")
    bridge_dead_letter_dir: Path = Field(
        Path(".local/bridge/dead-letter"), description="Day files of the messages acked without a record."
    )
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING, ERROR.")

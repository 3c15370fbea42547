"""Every setting of a box, in one frozen object: file (TOML/JSON) and ``WATTSTREAM_DEVICE_*``.

Precedence: explicit overrides (CLI options) > environment > settings file > defaults.
Nested groups use ``__`` in variable names, e.g. ``WATTSTREAM_DEVICE_MODBUS__HOST=10.0.0.7``.

Example ``box.toml``::

    device_id = "box-0001"
    broker_host = "localhost"
    broker_port = 8883
    meter = "modbus"
    read_interval_s = 10
    # basic_ingest_rule = "wattstream_energy_consumption"   # IoT Core endpoints only

    [modbus]
    transport = "tcp"
    host = "192.168.1.50"
    port = 502
    unit_id = 1

Several meters on one box, each its own thing (``device.sources.spec`` for the URL form; with
``meters`` set, ``meter`` and ``[modbus]`` are not used)::

    device_id = "box-0001"          # the thing of a meter that names none
    timezone = "Europe/Amsterdam"   # for devices that stamp local time (Tasmota)

    [[meters]]
    url = "shelly+http://10.0.0.5"
    thing = "box-7"

    [[meters]]
    url = "dsmr+serial:///dev/ttyUSB0"
    thing = "box-8"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import (
    BaseSettings,
    JsonConfigSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from device.batching import IOT_BILLING_STEP_BYTES, MIN_MESSAGE_BYTES, BatchPolicy
from device.certs import DEFAULT_CERT_DIR, CertLayout
from device.publisher import MqttConfig
from device.topic import publish_topic
from readings.decode import MAX_READINGS
from readings.errors import ConfigError


class SimulatedMeterSettings(BaseModel):
    model_config = {"frozen": True}

    seed: int = Field(0, description="Seed of the load noise; same seed, same readings.")
    profile: Literal["household", "small_business"] = Field("household", description="Daily load shape.")
    scale: float = Field(1.0, gt=0, description="Multiplies the whole load shape.")
    noise_w: float = Field(60.0, ge=0, description="Standard deviation of the load noise.")
    utc_offset_h: float = Field(0.0, description="Local time of the premises, for the peaks.")
    start_energy_wh: float = Field(0.0, ge=0, description="Register at first start.")
    reset_every_s: float = Field(0.0, ge=0, description="Inject a register reset this often (0 = never).")
    solar_kw: float = Field(
        0.0,
        ge=0,
        description="Peak output (kW) of a PV system behind the meter (0 = none). The meter then also keeps the export "
        "register (energy_export_wh, OBIS 2.8.0), which rises while generation exceeds the load.",
    )


class ModbusSettings(BaseModel):
    model_config = {"frozen": True}

    transport: Literal["tcp", "rtu"] = Field("tcp", description="Modbus TCP or RTU over RS-485.")
    host: str = Field("127.0.0.1", description="TCP: meter or gateway address.")
    port: int = Field(502, description="TCP: port.")
    serial_port: str = Field("/dev/ttyUSB0", description="RTU: serial device.")
    baudrate: int = Field(9600, description="RTU: SDM630 default 9600.")
    parity: Literal["N", "E", "O"] = Field("N", description="RTU: parity.")
    stopbits: int = Field(1, description="RTU: stop bits.")
    unit_id: int = Field(1, ge=0, le=247, description="Modbus device (slave) id.")
    timeout_s: float = Field(1.0, gt=0, description="Per-request timeout.")
    retries: int = Field(1, ge=0, description="Retries of one request before the read fails.")


class MeterEntry(BaseModel):
    """One meter of a box: its URL, its thing and any option of the URL's fragment as a key."""

    model_config = ConfigDict(frozen=True, extra="allow")

    url: str = Field(description="<family>+<transport>://… (device.sources.spec).")
    thing: str | None = Field(None, description="Thing name of this meter; default: the box's device_id.")

    @property
    def options(self) -> dict[str, object]:
        return dict(self.model_extra or {})


class DeviceSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="WATTSTREAM_DEVICE_", env_nested_delimiter="__", frozen=True, extra="ignore"
    )

    device_id: str = Field("box-0001", description="Thing name: MQTT client id, topic and certificate CN.")
    broker_host: str = Field("localhost", description="MQTT broker (IoT Core endpoint or local Mosquitto).")
    broker_port: int = Field(8883, description="MQTT over TLS port.")
    mqtt_protocol: Literal["3.1.1", "5"] = Field("3.1.1", description="MQTT protocol version.")
    keepalive_s: int = Field(60, ge=5, description="MQTT keepalive.")
    reconnect_min_s: float = Field(1.0, gt=0, description="First reconnect delay (doubles, with jitter).")
    reconnect_max_s: float = Field(60.0, gt=0, description="Longest reconnect delay.")
    cert_dir: Path = Field(DEFAULT_CERT_DIR, description="Folder from `wattstream certs`.")
    ca_file: Path | None = Field(None, description="CA bundle; default <cert_dir>/ca.crt.")
    cert_file: Path | None = Field(None, description="Device certificate; default <cert_dir>/devices/<id>.crt.")
    key_file: Path | None = Field(None, description="Device key; default <cert_dir>/devices/<id>.key.")

    spool_path: Path | None = Field(None, description="SQLite spool; default .local/spool/<id>.db.")
    spool_max_readings: int = Field(500_000, ge=1, description="Cap of the spool; oldest dropped past it.")
    spool_synchronous: Literal["FULL", "NORMAL"] = Field("FULL", description="FULL survives power loss.")

    read_interval_s: float = Field(10.0, gt=0, description="Time between meter reads.")
    max_readings: int = Field(50, ge=1, le=MAX_READINGS, description="Most readings in one message.")
    max_wait_s: float = Field(60.0, ge=0, description="Longest a reading waits for its batch.")
    max_message_bytes: int = Field(
        IOT_BILLING_STEP_BYTES, ge=MIN_MESSAGE_BYTES, le=128 * 1024, description="Payload limit."
    )
    max_inflight: int = Field(20, ge=1, le=1000, description="Messages awaiting PUBACK at once.")

    meter: Literal["simulated", "modbus"] = Field("simulated", description="Meter source.")
    simulated: SimulatedMeterSettings = Field(default_factory=SimulatedMeterSettings)
    modbus: ModbusSettings = Field(default_factory=ModbusSettings)
    meters: list[MeterEntry] = Field(
        default_factory=list,
        description="Meters of this box, each its own thing (device.sources); empty = the one `meter` above.",
    )
    timezone: str | None = Field(
        None, description="IANA zone of devices that stamp local time without an offset; default: the box's zone."
    )

    basic_ingest_rule: str | None = Field(
        None,
        description="Publish to $aws/rules/<this rule>/energy/consumption/<id> (AWS IoT Basic Ingest: no messaging "
        "charge). IoT Core only: refused for a broker host that is not *.amazonaws.com unless basic_ingest_force.",
    )
    basic_ingest_force: bool = Field(False, description="Use basic_ingest_rule with any broker host.")

    metrics_port: int = Field(0, ge=0, description="Prometheus endpoint port (0 = off).")
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING, ERROR.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config = settings_cls.model_config
        if config.get("toml_file"):
            sources.append(TomlConfigSettingsSource(settings_cls))
        if config.get("json_file"):
            sources.append(JsonConfigSettingsSource(settings_cls))
        return tuple(sources)

    @property
    def batch_policy(self) -> BatchPolicy:
        return BatchPolicy(self.max_readings, self.max_wait_s, self.max_message_bytes)

    @property
    def resolved_spool_path(self) -> Path:
        return self.spool_path or Path(".local/spool") / f"{self.device_id}.db"

    def publish_topic(self) -> str:
        """The topic of this box's messages (see ``device.topic``); ``ConfigError`` if it cannot work."""
        return publish_topic(
            self.device_id,
            broker_host=self.broker_host,
            basic_ingest_rule=self.basic_ingest_rule,
            force=self.basic_ingest_force,
        )

    def mqtt_config(self) -> MqttConfig:
        identity = CertLayout(self.cert_dir).device(self.device_id)
        return MqttConfig(
            host=self.broker_host,
            port=self.broker_port,
            client_id=self.device_id,
            ca_file=self.ca_file or CertLayout(self.cert_dir).ca.cert_path,
            cert_file=self.cert_file or identity.cert_path,
            key_file=self.key_file or identity.key_path,
            protocol=self.mqtt_protocol,
            keepalive_s=self.keepalive_s,
            reconnect_min_s=self.reconnect_min_s,
            reconnect_max_s=self.reconnect_max_s,
            max_inflight=self.max_inflight,
        )


def load_settings(path: Path | None = None, **overrides: Any) -> DeviceSettings:
    """Settings from ``path`` (``.toml`` or ``.json``), the environment and ``overrides``."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if path is None:
        return DeviceSettings(**overrides)
    if not path.exists():
        raise ConfigError(f"settings file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".toml":
        key = "toml_file"
    elif suffix == ".json":
        key = "json_file"
    else:
        raise ConfigError(f"settings file must be .toml or .json, not {path.name}")
    bound = type("FileDeviceSettings", (DeviceSettings,), {"model_config": {**DeviceSettings.model_config, key: path}})
    return bound(**overrides)

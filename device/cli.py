"""``wattstream device …`` and ``wattstream certs …``: the box and its identities.

Library errors become ``click.ClickException`` here, at the edge.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import click

from device import certs as certs_lib
from readings.errors import WattstreamError
from readings.logs import configure as configure_logging

MAX_BACKFILL_MS = 7 * 24 * 3600 * 1000


def _stop_on_signals(event: Any) -> None:
    def handler(signum: int, frame: Any) -> None:
        event.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def device() -> None:
    """Run an IoT box, or many virtual ones, publishing energy readings over MQTT/TLS.

    \b
    Examples:
      wattstream certs init && wattstream certs device box-0001
      wattstream device run --device-id box-0001 --broker-port 8883
      WATTSTREAM_DEVICE_METER=modbus WATTSTREAM_DEVICE_MODBUS__HOST=192.168.1.50 wattstream device run
      wattstream device run --meter 'shelly+http://10.0.0.5#thing=box-7' --meter 'dsmr+serial:///dev/ttyUSB0#thing=box-8'
      wattstream device probe 'tasmota+http://10.0.0.6'
      wattstream device simulate --devices 50 --duration-s 60 --interval-s 10 --speed 60
    """


_basic_ingest_option = click.option(
    "--basic-ingest-rule",
    "basic_ingest_rule",
    metavar="NAME",
    help="Publish via AWS IoT Basic Ingest to $aws/rules/NAME/energy/consumption/<id> (IoT Core endpoints only).",
)
_force_basic_ingest_option = click.option(
    "--force-basic-ingest",
    "basic_ingest_force",
    is_flag=True,
    default=None,
    help="Allow --basic-ingest-rule with a broker host that is not *.amazonaws.com.",
)


_LEGACY_METERS = ("simulated", "modbus")


def _meter_overrides(meters: tuple[str, ...]) -> dict[str, Any]:
    """``--meter`` values as settings: ``simulated``/``modbus`` pick ``meter``, URLs fill ``meters``."""
    legacy = [m for m in meters if m in _LEGACY_METERS]
    urls = [m for m in meters if m not in _LEGACY_METERS]
    if legacy and urls:
        raise click.UsageError("--meter simulated/modbus is the box's one meter; it cannot go with meter URLs")
    if len(legacy) > 1:
        raise click.UsageError("--meter simulated or modbus: one of them")
    if legacy:
        return {"meter": legacy[0]}
    return {"meters": [{"url": url} for url in urls]} if urls else {}


@device.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False), help="TOML or JSON settings.")
@click.option(
    "--meter",
    "meters",
    multiple=True,
    metavar="URL",
    help="A meter of this box, <family>+<transport>://…#thing=<thing> (repeatable: one thing per meter), "
    "or `simulated` / `modbus` for the one meter of the settings. Replaces the settings' meters.",
)
@click.option("--timezone", help="IANA zone of meters that stamp local time (Tasmota); default: the box's.")
@click.option("--device-id", help="Thing name (overrides the settings).")
@click.option("--broker-host", help="MQTT broker host.")
@click.option("--broker-port", type=int, help="MQTT broker TLS port.")
@click.option("--cert-dir", type=click.Path(path_type=Path, file_okay=False), help="Folder from `wattstream certs`.")
@click.option("--metrics-port", type=int, help="Prometheus endpoint port (0 = off).")
@_basic_ingest_option
@_force_basic_ingest_option
def run(config_path: Path | None, meters: tuple[str, ...], **overrides: Any) -> None:
    """Run one box: read the meter, spool, batch, publish; Ctrl-C drains and stops.

    Settings come from --config (TOML/JSON), then WATTSTREAM_DEVICE_* variables, then the
    options here (which win).

    Each --meter (or [[meters]] entry of the settings file) is a meter of its own thing, with
    its own spool, certificate (devices/<thing>.crt) and MQTT connection: URL forms for
    shelly, tasmota, zigbee2mqtt, emonhub, dsmr and sdm630 in docs/device.md. A meter without
    #thing= takes --device-id; only one may.

    With --basic-ingest-rule the box publishes to $aws/rules/<rule>/energy/consumption/<id>
    (AWS IoT Basic Ingest, no messaging charge); that works on IoT Core only, so a broker
    host that is not *.amazonaws.com is refused unless --force-basic-ingest.

    \b
    Examples:
      wattstream device run --config box.toml
      wattstream device run --meter 'shelly+http://10.0.0.5#thing=box-7' \\
        --meter 'tasmota+mqtt://broker.lan/plug-kitchen#thing=box-8' --timezone Europe/Amsterdam
      WATTSTREAM_DEVICE_DEVICE_ID=box-0042 wattstream device run --broker-port 18883
      wattstream device run --broker-host a1b2c3-ats.iot.us-east-1.amazonaws.com \\
        --cert-dir certs --basic-ingest-rule wattstream_energy_consumption
    """
    from device.runtime import RunLoop, WallClock, build_boxes
    from device.settings import load_settings

    try:
        settings = load_settings(config_path, **overrides, **_meter_overrides(meters))
        configure_logging(settings.log_level)
        if settings.metrics_port:
            from prometheus_client import start_http_server

            start_http_server(settings.metrics_port)
        clock = WallClock()
        boxes = build_boxes(settings, now_ms=clock.now_ms())
        loop = RunLoop(boxes, clock, poll_s=0.05, drain_s=10.0)
        _stop_on_signals(loop.stop_event)
        loop.run()
    except WattstreamError as exc:
        raise click.ClickException(str(exc)) from exc


@device.command()
@click.argument("url")
@click.option("--device-id", default="box-0001", show_default=True, help="Thing of a URL without #thing=.")
@click.option("--timezone", help="IANA zone of meters that stamp local time (Tasmota); default: the box's.")
@click.option(
    "--timeout-s",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="How long to wait for a meter that sends on its own schedule (MQTT, serial).",
)
def probe(url: str, device_id: str, timezone: str | None, timeout_s: float) -> None:
    """Read one sample of the meter at URL and print the wire v1 message a box would publish.

    Nothing is spooled or published. The seq printed is 1: a box numbers readings in its spool.
    A meter that is read (HTTP, Modbus) answers at once; one that sends (MQTT, a P1 port) is
    waited for up to --timeout-s. A read that fails exits non-zero with the reason.

    \b
    Examples:
      wattstream device probe 'shelly+http://10.0.0.5'
      wattstream device probe 'tasmota+mqtt://broker.lan/plug-kitchen' --timezone Europe/Amsterdam
      wattstream device probe 'dsmr+serial:///dev/ttyUSB0#thing=box-8'
    """
    from device.batching import pack
    from device.meters import MeterError, NoNewReading
    from device.runtime import WallClock
    from device.sources import open_meter, parse_meter_url
    from device.spool import SpooledReading
    from readings.models import Message

    configure_logging("WARNING")  # stdout holds the message only
    clock = WallClock()
    try:
        spec = parse_meter_url(url)
        meter = open_meter(spec, default_tz=timezone, clock_ms=clock.now_ms)
    except WattstreamError as exc:
        raise click.ClickException(str(exc)) from exc
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                sample = meter.read(clock.now_ms())
                break
            except NoNewReading as exc:
                if time.monotonic() >= deadline:
                    raise click.ClickException(f"no reading within {timeout_s:g} s from {spec.label}") from exc
                time.sleep(0.1)
            except MeterError as exc:
                raise click.ClickException(f"{exc.reason}: {exc}") from exc
    finally:
        meter.close()
    reading = SpooledReading(seq=1, **{f: getattr(sample, f) for f in sample.__dataclass_fields__})
    payload = pack(spec.thing or device_id, [reading], max_readings=1, max_bytes=128 * 1024).payload
    Message.model_validate_json(payload)  # what the consumer would accept
    click.echo(payload.decode())


@device.command()
@click.option("--devices", "count", type=int, default=10, show_default=True, help="Virtual boxes.")
@click.option("--duration-s", type=float, default=60.0, show_default=True, help="Real seconds of reading.")
@click.option("--interval-s", type=float, default=10.0, show_default=True, help="Simulated seconds between reads.")
@click.option("--speed", type=float, default=1.0, show_default=True, help="Simulated seconds per real second.")
@click.option("--host", "broker_host", default="localhost", show_default=True, help="MQTT broker host.")
@click.option("--port", "broker_port", type=int, default=8883, show_default=True, help="MQTT broker TLS port.")
@click.option(
    "--cert-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=certs_lib.DEFAULT_CERT_DIR,
    show_default=True,
    help="Folder from `wattstream certs init`.",
)
@click.option(
    "--spool-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path(".local/spool/sim"),
    show_default=True,
    help="One spool file per box.",
)
@click.option("--prefix", default="box-", show_default=True, help="Device ids are <prefix>0001, …")
@click.option("--first", type=int, default=1, show_default=True, help="Number of the first box.")
@click.option("--max-readings", type=int, default=50, show_default=True, help="Readings per message at most.")
@click.option("--max-wait-s", type=float, default=60.0, show_default=True, help="Simulated s a reading may wait.")
@click.option("--protocol", type=click.Choice(["3.1.1", "5"]), default="3.1.1", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Box i uses seed+i.")
@click.option(
    "--solar-kw",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Peak PV output (kW) behind the meters of the boxes with solar: around midday they export, "
    "their import register stays flat and the export register (energy_export_wh) rises. 0 = no solar.",
)
@click.option(
    "--solar-every",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Solar on the first box and every Nth after it (1 = every box); the others send no export register.",
)
@click.option(
    "--synchronous",
    type=click.Choice(["FULL", "NORMAL"]),
    default="NORMAL",
    show_default=True,
    help="Spool durability: NORMAL survives kill -9, FULL also power loss.",
)
@click.option("--reconnect-max-s", type=float, default=10.0, show_default=True, help="Longest reconnect delay.")
@click.option("--drain-s", type=float, default=30.0, show_default=True, help="Time to empty the spools at the end.")
@click.option(
    "--issue-certs/--no-issue-certs",
    default=True,
    show_default=True,
    help="Create missing device certificates with the CA in --cert-dir.",
)
@_basic_ingest_option
@_force_basic_ingest_option
def simulate(
    count: int,
    duration_s: float,
    interval_s: float,
    speed: float,
    cert_dir: Path,
    spool_dir: Path,
    prefix: str,
    first: int,
    max_readings: int,
    max_wait_s: float,
    protocol: str,
    seed: int,
    solar_kw: float,
    solar_every: int,
    synchronous: str,
    reconnect_max_s: float,
    drain_s: float,
    issue_certs: bool,
    basic_ingest_rule: str | None,
    basic_ingest_force: bool | None,
    **broker: Any,
) -> None:
    """Run N virtual boxes in one process (one MQTT connection and one spool each).

    Simulated time runs --speed times faster than real time from duration x (speed - 1) in the
    past (a week at most, or after the last reading of an earlier run with the same spools)
    and never passes the wall clock, so no reading lies in the future. At the end a JSON summary goes
    to stdout: readings, messages, throughput and the fill of the 5 KB billing step.

    With --solar-kw the boxes with solar (--solar-every) have a PV system behind the meter
    (sin-shaped from 06:00 to 18:00 UTC, peak at noon): while it produces more than the
    house uses, the reading's power_w is 0, the import register stays flat and the export
    register energy_export_wh (OBIS 2.8.0) rises. Without it, no reading has an export register.

    \b
    Examples:
      wattstream device simulate --devices 3 --duration-s 30 --interval-s 1 --port 18883
      wattstream device simulate --devices 100 --duration-s 60 --interval-s 10 --speed 600
      wattstream device simulate --devices 10 --solar-kw 5 --solar-every 2 \\
        --duration-s 60 --interval-s 60 --speed 1440 --port 18883
      wattstream device simulate --host a1b2c3-ats.iot.us-east-1.amazonaws.com \\
        --basic-ingest-rule wattstream_energy_consumption --no-issue-certs
    """
    from device.runtime import RunLoop, ScaledClock, WallClock, build_box, device_ids, simulated_settings
    from device.settings import DeviceSettings
    from device.spool import inspect

    try:
        base = DeviceSettings(
            cert_dir=cert_dir,
            mqtt_protocol=protocol,
            read_interval_s=interval_s,
            max_readings=max_readings,
            max_wait_s=max_wait_s,
            spool_synchronous=synchronous,
            reconnect_min_s=min(1.0, reconnect_max_s),
            reconnect_max_s=reconnect_max_s,
            simulated={"seed": seed, "solar_kw": solar_kw},
            basic_ingest_rule=basic_ingest_rule,
            basic_ingest_force=bool(basic_ingest_force),
            **broker,
        )
        base.publish_topic()  # a Basic Ingest topic the broker cannot take: refused before any certificate
        configure_logging(base.log_level)
        ids = device_ids(prefix, count, first)
        if issue_certs:
            for thing in ids:
                certs_lib.issue_device(cert_dir, thing)
        # Faster than real time, the simulated span ends when the run ends (at most a week back,
        # the consumer rejects older readings after 35 days): a sped-up run replays recent
        # history and then keeps pace with the wall clock, so no reading lies in the future.
        wall = WallClock()
        now_ms = wall.now_ms()
        start_ms = now_ms - min(int(duration_s * 1000 * (speed - 1)), MAX_BACKFILL_MS) if speed > 1 else now_ms
        for thing in ids:
            # A box that ran before goes on after its newest reading, never before it.
            spooled = inspect(spool_dir / f"{thing}.db")
            if spooled is not None and spooled.last.ts_ms is not None:
                start_ms = max(start_ms, spooled.last.ts_ms + int(interval_s * 1000))
        clock = ScaledClock(start_ms, speed, wall=wall)
        boxes = [
            build_box(simulated_settings(base, i, thing, spool_dir, solar_every=solar_every), now_ms=start_ms)
            for i, thing in enumerate(ids)
        ]
        loop = RunLoop(boxes, clock, drain_s=drain_s)
        _stop_on_signals(loop.stop_event)
        started = time.monotonic()
        loop.run(duration_s)
        elapsed_s = time.monotonic() - started
    except WattstreamError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(_summary(boxes, elapsed_s), indent=2))


def _summary(boxes: list[Any], elapsed_s: float) -> dict[str, Any]:
    from device.batching import IOT_BILLING_STEP_BYTES

    acked = sum(b.stats.messages_acked for b in boxes)
    readings_acked = sum(b.stats.readings_acked for b in boxes)
    payload = sum(b.stats.payload_bytes_acked for b in boxes)
    mean_bytes = payload / acked if acked else 0.0
    return {
        "devices": len(boxes),
        "elapsed_s": round(elapsed_s, 2),
        "readings": sum(b.stats.readings for b in boxes),
        "meter_errors": sum(b.stats.meter_errors for b in boxes),
        "messages_acked": acked,
        "readings_acked": readings_acked,
        "messages_per_s": round(acked / elapsed_s, 1) if elapsed_s else 0.0,
        "readings_per_s": round(readings_acked / elapsed_s, 1) if elapsed_s else 0.0,
        "mean_message_bytes": round(mean_bytes, 1),
        "billing_step_fill": round(mean_bytes / IOT_BILLING_STEP_BYTES, 3),
        "readings_per_message": round(readings_acked / acked, 2) if acked else 0.0,
        "spooled_left": sum(len(b.spool) for b in boxes),
    }


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def certs() -> None:
    """A local CA and the certificates of the broker, the bridge and each box (mutual TLS).

    \b
    Examples:
      wattstream certs init                       # CA, CRL, server (localhost) and bridge identity
      wattstream certs device box-0001            # CN=box-0001, the box's thing name
      wattstream certs revoke box-0001            # into the CRL; then SIGHUP the broker
      wattstream certs init --dir /tmp/certs --force
    """


_dir_option = click.option(
    "--dir",
    "cert_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=certs_lib.DEFAULT_CERT_DIR,
    show_default=True,
    help="Where the certificates live (git-ignored).",
)


@certs.command("init")
@_dir_option
@click.option("--force", is_flag=True, help="Replace an existing CA (every old certificate stops working).")
@click.option(
    "--server-name",
    "server_names",
    multiple=True,
    help="Another host name or IP of the broker for its certificate (repeatable).",
)
def certs_init(cert_dir: Path, force: bool, server_names: tuple[str, ...]) -> None:
    """Create the CA (kept if present), the server certificate and the bridge identity.

    The broker's certificate names localhost, 127.0.0.1 and ::1, plus each --server-name.
    The CRL (ca.crl, the broker's crlfile) is signed again, keeping its revocations unless the
    CA is new.

    \b
    Examples:
      wattstream certs init --dir .local/certs
      wattstream certs init --server-name mosquitto --server-name 192.0.2.10
    """
    layout = certs_lib.init_authority(cert_dir, force=force, server_names=server_names)
    for name, identity in (("ca", layout.ca), ("server", layout.server), ("bridge", layout.bridge)):
        click.echo(f"{name}: {identity.cert_path}")
    click.echo(f"crl: {layout.crl}")


@certs.command("device")
@_dir_option
@click.option("--overwrite", is_flag=True, help="Issue a new certificate even if one exists.")
@click.argument("things", nargs=-1, required=True)
def certs_device(cert_dir: Path, overwrite: bool, things: tuple[str, ...]) -> None:
    """Issue the certificate of each THING (CN = thing name).

    A THING is an AWS IoT thing name (1 to 64 of a-z A-Z 0-9 : _ -, 64 being the most a CN
    holds), and not wattstream-bridge or a name of the broker: the broker takes the CN as the
    client's identity, its client id and its ACL user.

    \b
    Example:
      wattstream certs device box-0001 box-0002
    """
    try:
        for thing in things:
            identity = certs_lib.issue_device(cert_dir, thing, overwrite=overwrite)
            click.echo(f"{thing}: {identity.cert_path}")
    except WattstreamError as exc:
        raise click.ClickException(str(exc)) from exc


@certs.command("revoke")
@_dir_option
@click.argument("names", nargs=-1, required=True)
def certs_revoke(cert_dir: Path, names: tuple[str, ...]) -> None:
    """Revoke the certificate of each NAME: a thing, or the bridge identity (wattstream-bridge).

    Adds its serial to ca.crl, signs the CRL with the local CA and moves the certificate and
    key to revoked/, so `certs device NAME` (or `certs bridge`) issues a new one. Mosquitto reads
    the CRL at start and on SIGHUP only: send it SIGHUP, after which new connections with the
    revoked certificate are refused. A connection opened before stays until it closes; restart
    the broker to end it (its persistent sessions survive the restart).

    \b
    Examples:
      wattstream certs revoke box-0001 && kill -HUP "$(pgrep -x mosquitto)"
      wattstream certs revoke --dir /certs box-0001 && docker compose kill -s HUP mosquitto
      wattstream certs revoke wattstream-bridge && wattstream certs bridge
    """
    try:
        for name in names:
            revoked = certs_lib.revoke(cert_dir, name)
            click.echo(f"{name}: serial {revoked.serial_number:x} revoked, files in {revoked.cert_path.parent}")
    except WattstreamError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"crl: {certs_lib.CertLayout(cert_dir).crl} (send the broker SIGHUP to apply it)")


@certs.command("bridge")
@_dir_option
@click.option("--name", default=certs_lib.BRIDGE_IDENTITY, show_default=True, help="CN of the bridge identity.")
def certs_bridge(cert_dir: Path, name: str) -> None:
    """Issue (again) the bridge identity certificate: bridge.crt/bridge.key.

    \b
    Example:
      wattstream certs bridge --dir .local/certs
    """
    try:
        layout = certs_lib.CertLayout(cert_dir)
        identity = certs_lib.issue(layout, layout.bridge, name)
    except WattstreamError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"bridge: {identity.cert_path}")

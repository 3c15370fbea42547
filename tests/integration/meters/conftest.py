"""Local stand-ins for the meters of a household, serving the documented shapes.

- ``device_http``: an ``http.server`` answering each path with a recorded document (Shelly's
  GetStatus and /shelly, Tasmota's Status 8); a test swaps documents, stops and restarts it.
- ``lan_broker``: a plain Mosquitto (anonymous, no TLS), the broker a Tasmota, Zigbee2MQTT,
  emonhub or Shelly publishes to on a LAN; ``lan_publish`` sends a message to it.
- ``pty_pair``: two pseudo-terminals joined by socat, the P1 cable of a DSMR meter: the
  source opens one end, the test writes telegrams to the other. Without socat the tests FAIL
  (``make install`` puts it there; tests/skips.py allows no skip for it).
- ``wattstream_broker``: the TLS Mosquitto with the ACL (devstack.broker) and certificates for
  the things of these tests, as in tests/integration/mqtt.

Every process is started here and stopped by its PID.
"""

from __future__ import annotations

import getpass
import json
import re
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from device import certs
from device.certs import CertLayout
from device.sources.dsmr import crc16
from devstack import broker as broker_lib
from devstack.net import free_port, wait_for_port
from devstack.stack import ChildProcess, wattstream_command

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "meters"
THINGS = ("meter-shelly", "meter-tasmota", "meter-dsmr", "meter-z2m", "meter-emon")
AMSTERDAM = ZoneInfo("Europe/Amsterdam")

pytestmark = pytest.mark.integration


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration/meters" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def fixture_bytes() -> Callable[[str], bytes]:
    return lambda name: (FIXTURES / name).read_bytes()


# --- HTTP --------------------------------------------------------------------------------------


@dataclass
class DeviceHttp:
    """What the stand-in serves: path (with query) -> (status, body); every request is recorded."""

    port: int = field(default_factory=free_port)
    routes: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    hold: threading.Event | None = None
    """While set to an unset Event, requests wait for it: a device that accepts and never answers."""

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve(self, path: str, body: bytes, status: int = 200) -> None:
        self.routes[path] = (status, body)

    def start(self) -> None:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stand_in.requests.append(self.path)
                if stand_in.hold is not None:
                    stand_in.hold.wait(30)
                status, body = stand_in.routes.get(self.path, (404, b'{"code":404,"message":"No handler"}'))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading (a body over its limit)

            def log_message(self, format: str, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.hold is not None:
            self.hold.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture
def device_http() -> Iterator[DeviceHttp]:
    stand_in = DeviceHttp()
    stand_in.start()
    yield stand_in
    stand_in.stop()


# --- LAN broker ----------------------------------------------------------------------------------


@dataclass
class LanBroker:
    process: subprocess.Popen[bytes]
    port: int


@pytest.fixture
def lan_broker(tmp_path: Path) -> Iterator[LanBroker]:
    binary = broker_lib.mosquitto_binary()
    if binary is None:
        pytest.skip("mosquitto is not installed (apt-get install -y mosquitto)")
    port = free_port()
    work = tmp_path / "lan-mosquitto"
    work.mkdir()
    conf = work / "mosquitto.conf"
    conf.write_text(
        f"per_listener_settings false\nallow_anonymous true\nuser {getpass.getuser()}\n"
        f"listener {port} 127.0.0.1\npersistence false\nlog_dest file {work / 'mosquitto.log'}\n"
    )
    process = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port("127.0.0.1", port, 10, alive=lambda: process.poll() is None)
    yield LanBroker(process, port)
    broker_lib.stop_process(process)


@pytest.fixture
def lan_publish(lan_broker: LanBroker) -> Iterator[Callable[[str, bytes], None]]:
    """Publish (QoS 1, acknowledged) to the LAN broker as a device would."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="stand-in-device", protocol=mqtt.MQTTv311)
    client.connect("127.0.0.1", lan_broker.port, keepalive=30)
    client.loop_start()

    def publish(topic: str, payload: bytes) -> None:
        info = client.publish(topic, payload, qos=1)
        info.wait_for_publish(10)
        assert info.is_published()

    yield publish
    client.disconnect()
    client.loop_stop()


# --- the P1 cable ----------------------------------------------------------------------------------


@dataclass
class PtyPair:
    meter_end: str
    """The path the source opens (``dsmr+serial://<meter_end>``)."""
    test_end: str
    process: subprocess.Popen[bytes]
    port: BinaryIO | None = None
    """The test's end, kept open: socat ends the pair when a side is closed."""

    def write(self, data: bytes) -> None:
        if self.port is None:
            self.port = open(self.test_end, "wb", buffering=0)  # noqa: SIM115 - open for the fixture's life
        self.port.write(data)


@pytest.fixture
def pty_pair() -> Iterator[PtyPair]:
    socat = shutil.which("socat")
    if socat is None:
        pytest.fail("socat is not installed (apt-get install -y socat; `make install` does it)")
    process = subprocess.Popen(
        [socat, "-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert process.stderr is not None
    paths: list[str] = []
    while len(paths) < 2:
        line = process.stderr.readline().decode(errors="replace")
        if not line:
            raise AssertionError("socat exited before it opened two ptys")
        match = re.search(r"PTY is (\S+)", line)
        if match:
            paths.append(match.group(1))
    stderr = process.stderr
    threading.Thread(target=lambda: [None for _ in iter(stderr.readline, b"")], daemon=True).start()
    pair = PtyPair(paths[0], paths[1], process)
    yield pair
    if pair.port is not None:
        pair.port.close()
    broker_lib.stop_process(process)


# --- the wattstream broker (TLS + ACL) ----------------------------------------------------------


@pytest.fixture(scope="session")
def meter_certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("meter-certs")
    certs.init_authority(root)
    for thing in THINGS:
        certs.issue_device(root, thing)
    return root


@pytest.fixture
def wattstream_broker(tmp_path: Path, meter_certs: Path) -> Iterator[broker_lib.Broker]:
    if broker_lib.mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed (apt-get install -y mosquitto)")
    running = broker_lib.start(tmp_path / "mosquitto", meter_certs)
    yield running
    broker_lib.stop(running)


@dataclass
class Published:
    """Every message on energy/consumption/+ of the wattstream broker, as the bridge would read it."""

    messages: list[tuple[str, dict]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def readings(self, thing: str) -> list[dict]:
        with self.lock:
            found = {r["seq"]: r for topic, m in self.messages if topic.endswith("/" + thing) for r in m["readings"]}
        return [found[seq] for seq in sorted(found)]


@pytest.fixture
def published(wattstream_broker: broker_lib.Broker, meter_certs: Path) -> Iterator[Published]:
    layout = CertLayout(meter_certs)
    out = Published()
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="wattstream-bridge", protocol=mqtt.MQTTv311)
    client.tls_set(
        str(layout.ca.cert_path),
        str(layout.bridge.cert_path),
        str(layout.bridge.key_path),
        tls_version=ssl.PROTOCOL_TLS_CLIENT,
    )

    def on_connect(c, userdata, flags, reason, properties) -> None:
        c.subscribe("energy/consumption/+", qos=1)

    def on_message(c, userdata, message) -> None:
        with out.lock:
            out.messages.append((message.topic, json.loads(message.payload)))

    client.on_connect = on_connect
    client.on_subscribe = lambda *args: subscribed.set()
    client.on_message = on_message
    client.connect("localhost", wattstream_broker.port, keepalive=30)
    client.loop_start()
    assert subscribed.wait(10), "could not subscribe to the wattstream broker"
    yield out
    client.disconnect()
    client.loop_stop()


# --- one box, three meters -------------------------------------------------------------------------


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def dsmr_telegram(import_t1_kwh: float, stamp_ms: int, *, crc_ok: bool = True) -> bytes:
    """A DSMR 5 telegram of the fixture's meter with its tariff-1 import register and time replaced."""
    local = datetime.fromtimestamp(stamp_ms / 1000, AMSTERDAM)
    season = "S" if local.utcoffset() == timedelta(hours=2) else "W"
    body = (FIXTURES / "dsmr/dsmr5_iskra_am550.txt").read_bytes().split(b"!")[0] + b"!"
    body = body.replace(
        b"0-0:1.0.0(170102192002W)", b"0-0:1.0.0(%s%s)" % (local.strftime("%y%m%d%H%M%S").encode(), season.encode())
    )
    body = body.replace(b"1-0:1.8.1(000004.426*kWh)", b"1-0:1.8.1(%010.3f*kWh)" % import_t1_kwh)
    crc = crc16(body) if crc_ok else crc16(body) ^ 0x0101
    return body + b"%04X\r\n" % crc


@dataclass
class Household:
    """One box reading a Shelly (HTTP), a Tasmota (MQTT) and a DSMR meter (P1), each its own thing.

    ``step(i)`` moves every meter's register; ``offered`` keeps every register value each thing's
    meter ever showed, in Wh, which is all the box may publish. Device clocks (Tasmota's Time, the
    telegram's 0-0:1.0.0) tick one second per step from a minute ago, so they are recent, distinct
    and never in the future.
    """

    device_http: DeviceHttp
    lan_port: int
    publish: Callable[[str, bytes], None]
    pty: PtyPair
    offered: dict[str, list[float]] = field(default_factory=dict)
    clock_base_ms: int = field(default_factory=lambda: _now_ms() // 1000 * 1000 - 60_000)
    things: tuple[str, str, str] = ("meter-shelly", "meter-tasmota", "meter-dsmr")
    last_sent: tuple[bytes, bytes] = (b"", b"")

    def meter_args(self) -> list[str]:
        shelly, tasmota, p1 = self.things
        return [
            "--meter",
            f"shelly+{self.device_http.base}#thing={shelly}&gen=2",
            "--meter",
            f"tasmota+mqtt://127.0.0.1:{self.lan_port}/plug-kitchen#thing={tasmota}",
            "--meter",
            f"dsmr+serial://{self.pty.meter_end}#thing={p1}",
            "--timezone",
            "Europe/Amsterdam",
        ]

    def registers(self, i: int) -> tuple[float, float, float]:
        """(Shelly Wh, Tasmota kWh, DSMR tariff-1 kWh) at step i."""
        return 18236.472 + 1.5 * i, round(3.705 + 0.002 * i, 3), round(4.426 + 0.003 * i, 3)

    def step(self, i: int) -> None:
        shelly_wh, tasmota_kwh, t1_kwh = self.registers(i)
        stamp_ms = self.clock_base_ms + 1000 * i
        status = json.loads((FIXTURES / "shelly/plus1pm_getstatus.json").read_text())
        status["switch:0"]["aenergy"]["total"] = shelly_wh
        self.device_http.serve("/rpc/Shelly.GetStatus", json.dumps(status).encode())
        local = datetime.fromtimestamp(stamp_ms / 1000, AMSTERDAM).strftime("%Y-%m-%dT%H:%M:%S")
        sensor = {"Time": local, "ENERGY": {"Total": tasmota_kwh, "Power": 120, "Voltage": 231, "Current": 0.52}}
        self.last_sent = (json.dumps(sensor).encode(), dsmr_telegram(t1_kwh, stamp_ms))
        self.resend()
        shelly, tasmota, p1 = self.things
        self.offered.setdefault(shelly, []).append(round(shelly_wh, 3))
        self.offered.setdefault(tasmota, []).append(round(tasmota_kwh * 1000, 3))
        self.offered.setdefault(p1, []).append(round((t1_kwh + 2.399) * 1000, 3))

    def resend(self) -> None:
        """Send the step's Tasmota message and telegram again, as the devices do every period.

        A message sent before the box subscribed (or opened the port) is lost, as on a LAN; the
        repeats carry the same device time, so the box never makes a second reading of one.
        """
        sensor, telegram = self.last_sent
        self.publish("tele/plug-kitchen/SENSOR", sensor)
        self.pty.write(telegram)

    def bad_telegram(self, i: int) -> float:
        """A telegram with a wrong CRC whose register no reading may carry; returns that register in Wh."""
        t1_kwh = 999.999
        self.pty.write(dsmr_telegram(t1_kwh, self.clock_base_ms + 1000 * i + 500, crc_ok=False))
        return round((t1_kwh + 2.399) * 1000, 3)


@pytest.fixture
def household(device_http, lan_broker, lan_publish, pty_pair, fixture_bytes) -> Household:
    device_http.serve("/shelly", fixture_bytes("shelly/gen2_shelly.json"))
    return Household(device_http, lan_broker.port, lan_publish, pty_pair)


def box_command(household: Household, broker_port: int, cert_dir: Path) -> list[str]:
    return wattstream_command(
        "device",
        "run",
        *household.meter_args(),
        "--broker-port",
        str(broker_port),
        "--cert-dir",
        str(cert_dir),
    )


@pytest.fixture
def box_env(tmp_path: Path) -> dict[str, str]:
    return {
        "PYTHONPATH": str(Path(__file__).resolve().parents[3]),
        "WATTSTREAM_DEVICE_READ_INTERVAL_S": "0.2",
        "WATTSTREAM_DEVICE_MAX_WAIT_S": "0.5",
        "WATTSTREAM_DEVICE_SPOOL_PATH": str(tmp_path / "spool" / "box.db"),
        "WATTSTREAM_DEVICE_SPOOL_SYNCHRONOUS": "NORMAL",
        "WATTSTREAM_DEVICE_RECONNECT_MAX_S": "2",
    }


@pytest.fixture
def start_box(tmp_path: Path, box_env: dict[str, str]) -> Iterator[Callable[..., ChildProcess]]:
    started: list[ChildProcess] = []

    def start(household: Household, broker_port: int, cert_dir: Path) -> ChildProcess:
        box = ChildProcess(box_command(household, broker_port, cert_dir), box_env, tmp_path / "box.log")
        started.append(box.start())
        return box

    yield start
    for box in started:
        box.stop()

"""Which meter, where, and under which thing: ``<family>+<transport>://<address>#<options>``.

The URL says how to reach the meter; the fragment (never sent to the device) carries what the
box needs to know about it, as ``key=value`` pairs joined by ``&``, ``thing`` first among them::

    shelly+http://10.0.0.5#thing=box-7
    shelly+http://admin:secret@10.0.0.6#thing=box-8&channel=1
    shelly+mqtt://broker.lan/shellyplus1pm-a8032ab12345#thing=box-9
    tasmota+mqtt://user:pass@broker.lan:1883/plug-kitchen#thing=box-10&tz=Europe/Amsterdam
    tasmota+http://10.0.0.7#thing=box-11
    zigbee2mqtt+mqtt://broker.lan/Washing%20machine#thing=box-12
    emonhub+mqtt://emonpi.lan/emontx4#thing=box-13&energy=E1&power=P1
    dsmr+serial:///dev/ttyUSB0#thing=box-14
    dsmr+tcp://10.0.0.8:2001#thing=box-15
    sdm630+tcp://10.0.0.9:502#thing=box-16&unit=1

The fragment is used rather than ``thing@host`` because the user part of a URL already holds
the device's or the broker's credentials. A meter without ``thing`` takes the box's
``device_id``, which only one meter of a box may do. The same entries in a settings file::

    [[meters]]
    url = "shelly+http://10.0.0.5"
    thing = "box-7"
    channel = 0          # any option of the fragment, as a key of its own
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from readings.errors import ConfigError
from readings.models import is_thing_name

FAMILIES = ("shelly", "tasmota", "zigbee2mqtt", "emonhub", "dsmr", "sdm630")
TRANSPORTS: dict[str, tuple[str, ...]] = {
    "shelly": ("http", "https", "mqtt", "mqtts"),
    "tasmota": ("http", "https", "mqtt", "mqtts"),
    "zigbee2mqtt": ("mqtt", "mqtts"),
    "emonhub": ("mqtt", "mqtts"),
    "dsmr": ("serial", "tcp"),
    "sdm630": ("tcp", "rtu"),
}
ALIASES = {"z2m": "zigbee2mqtt", "emon": "emonhub", "p1": "dsmr", "modbus": "sdm630"}


@dataclass(frozen=True, slots=True)
class MeterSpec:
    """One meter of a box: ``family``, ``transport``, the device ``url`` and the box's options."""

    family: str
    transport: str
    url: str
    """The address with the plain transport scheme (``http://10.0.0.5``), no fragment."""
    thing: str | None = None
    options: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The URL without credentials, for logs and errors."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        return f"{self.family}+{parts.scheme}://{host}{parts.path}"

    def option(self, key: str, default: str) -> str:
        return self.options.get(key, default)

    def float_option(self, key: str, default: float) -> float:
        raw = self.options.get(key)
        try:
            return default if raw is None else float(raw)
        except ValueError:
            raise ConfigError(f"{self.label}: {key}={raw!r} is not a number") from None

    def int_option(self, key: str, default: int) -> int:
        raw = self.options.get(key)
        try:
            return default if raw is None else int(raw)
        except ValueError:
            raise ConfigError(f"{self.label}: {key}={raw!r} is not an integer") from None

    def path(self) -> str:
        """The URL's path without its leading '/', percent-decoded (a topic, a friendly name)."""
        return unquote(urlsplit(self.url).path).lstrip("/")


def parse_meter_url(text: str, *, thing: str | None = None, options: dict[str, object] | None = None) -> MeterSpec:
    """The ``MeterSpec`` of ``text`` (module docstring); ``ConfigError`` with the reason if it is not one."""
    head, sep, rest = text.partition("://")
    family, plus, transport = head.partition("+")
    family = ALIASES.get(family.lower(), family.lower())
    transport = transport.lower()
    if not sep or not plus:
        raise ConfigError(f"meter {text!r}: expected <family>+<transport>://…, families: {', '.join(FAMILIES)}")
    if family not in TRANSPORTS:
        raise ConfigError(f"meter {text!r}: unknown family {family!r} (known: {', '.join(FAMILIES)})")
    if transport not in TRANSPORTS[family]:
        raise ConfigError(f"meter {text!r}: {family} is read over {', '.join(TRANSPORTS[family])}, not {transport!r}")
    address, _, fragment = rest.partition("#")
    merged: dict[str, str] = {}
    for key, text_value in parse_qsl(fragment, keep_blank_values=True):
        merged[key] = text_value
    for key, value in (options or {}).items():
        merged[key] = str(value).lower() if isinstance(value, bool) else str(value)
    chosen = thing if thing is not None else merged.pop("thing", None)
    merged.pop("thing", None)
    if chosen is not None and not is_thing_name(chosen):
        raise ConfigError(f"meter {text!r}: thing {chosen!r} is not a thing name (a-z A-Z 0-9 : _ -)")
    if not address.strip("/"):
        raise ConfigError(f"meter {text!r}: no address")
    return MeterSpec(family, transport, f"{transport}://{address}", chosen, merged)

"""The fleet page in a real headless Chromium, served by a real ``wattstream serve``.

A small fleet is written through the shard processor into moto, ending a minute ago; the page
must show the very figures the readings make (fleet.py's plain computation), draw today's
quarters and the week's hours with gaps where there is no data, and link a CSV equal to the API.
The screenshots land in the test's folder (the path is printed).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest

from consumer.query import COLUMNS
from devstack.net import free_port
from devstack.stack import ChildProcess, wait_until, wattstream_command
from sinks.registry import DeviceInfo
from tests.integration.api.fleet import MINUTE_MS, local_intervals, local_midnight, meter

pytestmark = pytest.mark.integration

CHROMIUM = "chromium"


class Dom(HTMLParser):
    """Just enough of a DOM: every element's tag, attributes and text, in document order."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.elements: list[dict] = []
        self._open: list[dict] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = {"tag": tag, "attrs": dict(attrs), "text": "", "children": []}
        if self._open:
            self._open[-1]["children"].append(node)
        self.elements.append(node)
        if tag not in ("meta", "link", "br", "img", "input"):
            self._open.append(node)

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop()["tag"] == tag:
                break

    def handle_data(self, data: str) -> None:
        for node in self._open:
            node["text"] += data

    def by_id(self, id_: str) -> dict:
        found = [e for e in self.elements if e["attrs"].get("id") == id_]
        assert found, f"no element #{id_}"
        return found[0]

    def where(self, name: str, value: str | None = None) -> list[dict]:
        return [e for e in self.elements if name in e["attrs"] and (value is None or e["attrs"][name] == value)]


def within(node: dict, tag: str) -> list[dict]:
    out = []
    for child in node["children"]:
        if child["tag"] == tag:
            out.append(child)
        out.extend(within(child, tag))
    return out


def chromium(url: str, *args: str) -> str:
    binary = shutil.which(CHROMIUM)
    assert binary, "chromium is not installed (make install puts it in with apt)"
    result = subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--window-size=1200,1500",
            "--virtual-time-budget=15000",
            *args,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.fixture(scope="module")
def site(stored_fleet, tmp_path_factory):
    end_ms = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS - MINUTE_MS
    meters = [
        meter(
            "box-web-berlin",
            "Europe/Berlin",
            end_ms - 3 * 86_400_000,
            end_ms,
            info=DeviceInfo("box-web-berlin", "Europe/Berlin", name="Bakery", site="north"),
            # An hour long silence an hour and a half back: its energy is estimated (E).
            skip=(end_ms - 150 * MINUTE_MS, end_ms - 90 * MINUTE_MS),
        ),
        meter(
            "box-web-york",
            "America/New_York",
            end_ms - 36 * 3_600_000,
            end_ms - 5 * MINUTE_MS,
            # A threshold below its draw: the consumer fires ``power_high`` for it, and the page shows it.
            info=DeviceInfo("box-web-york", "America/New_York", name="Lab", power_limit_w=1.0),
        ),
    ]
    env = stored_fleet(meters, end_ms + MINUTE_MS)
    work = tmp_path_factory.mktemp("web")
    port = free_port()
    serve = ChildProcess(wattstream_command("serve", "--port", str(port)), env, work / "serve.log").start()

    def up() -> bool:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).status == 200
        except OSError:
            return False

    try:
        wait_until(lambda: up() or not serve.running, 60, 0.2, "wattstream serve up")
        assert serve.running, serve.log_text()
        yield {"url": f"http://127.0.0.1:{port}", "meters": {m.device_id: m for m in meters}, "work": work}
    finally:
        serve.stop()


def silence_start_ms(m) -> int:
    """The time of the reading before the meter's silence (a step longer than 15 minutes)."""
    return next(
        a["ts_ms"] for a, b in zip(m.readings, m.readings[1:], strict=False) if b["ts_ms"] - a["ts_ms"] > 900_000
    )


def api(site: dict, path: str) -> dict:
    with urllib.request.urlopen(site["url"] + path, timeout=30) as response:  # noqa: S310 - loopback
        return json.loads(response.read())


def screenshot(site: dict, fragment: str, name: str) -> Path:
    path = Path(site["work"]) / name
    chromium(site["url"] + "/" + fragment, f"--screenshot={path}")
    assert path.stat().st_size > 10_000, path
    print(f"screenshot: {path}")
    return path


def test_the_fleet_table_shows_what_the_readings_make(site) -> None:
    dom = Dom(chromium(site["url"] + "/", "--dump-dom"))
    assert dom.by_id("view")["attrs"]["data-state"] == "ready", dom.by_id("view")["text"]
    rows = {r["attrs"]["data-device"]: r for r in dom.where("data-device")}
    assert sorted(rows) == sorted(site["meters"])
    listed = {d["device_id"]: d for d in api(site, "/devices")["devices"]}
    for device_id, m in site["meters"].items():
        cells = {c["attrs"].get("data-field"): c["text"].strip() for c in within(rows[device_id], "td")}
        today_wh = m.energy_wh(local_midnight(m.last["ts_ms"], m.tz), m.last["ts_ms"] + 1)
        assert float(cells["today_kwh"]) == pytest.approx(today_wh / 1000, abs=0.0005 + 1e-6), device_id
        assert float(cells["power_w"]) == pytest.approx(m.last["power_w"], abs=0.05)
        assert cells["completeness"] == f"{listed[device_id]['today_completeness_pct']:.1f} %"
        assert cells["alerts"] == ("power_high" if device_id == "box-web-york" else "ok"), device_id
        if device_id == "box-web-york":  # a reading every minute, none missing
            assert cells["completeness"] == "100.0 %"
        seen = [t for t in within(rows[device_id], "time")][0]["attrs"]["datetime"]
        assert seen == listed[device_id]["last_seen"]
    screenshot(site, "", "fleet.png")


def test_the_device_page_charts_today_by_quarter_with_gaps_and_links_the_csv(site) -> None:
    m = site["meters"]["box-web-berlin"]
    dom = Dom(chromium(site["url"] + "/#/device/box-web-berlin", "--dump-dom"))
    assert dom.by_id("view")["attrs"]["data-state"] == "ready", dom.by_id("view")["text"]
    last = m.last["ts_ms"]
    day = local_midnight(last, m.tz)
    quarters = local_intervals(day, local_midnight(last, m.tz, 1), "15m", m.tz)
    chart = dom.by_id("chart-today")
    values = json.loads(chart["attrs"]["data-values"])
    assert chart["attrs"]["data-every"] == "15m" and len(values) == len(quarters)
    rows = within(dom.by_id("table-today"), "tr")[1:]
    assert len(rows) == len(quarters)
    for (start, end, local), value, row in zip(quarters, values, rows, strict=True):
        texts = [c["text"].strip() for c in within(row, "td")]
        assert texts[0] == local
        if start > last:  # after the newest reading: a gap on the chart, not a zero bar
            assert value is None and texts[1:] == ["N", "—"], local
        else:
            # The open hour's quarters are thousandths of it (sinks.live): a few tenths of a Wh.
            assert value == pytest.approx(m.energy_wh(start, end), abs=0.5), local
            assert float(texts[2]) == pytest.approx(value, abs=0.001)  # shown to the mWh
    if day <= silence_start_ms(m):
        # The hour's silence is today: its quarters are estimated, and marked so.
        assert any(row["attrs"]["class"] == "q-E" for row in rows)
    total = float(dom.by_id("total-today")["text"].split()[0])
    assert total == pytest.approx(
        m.energy_wh(day, last + 1) / 1000, abs=0.0005 + 1e-6
    )  # shown to the Wh, sums of floats

    week_chart = dom.by_id("chart-week")
    assert week_chart["attrs"]["data-every"] == "1h"
    week = json.loads(week_chart["attrs"]["data-values"])
    hours = local_intervals(local_midnight(last, m.tz, -6), local_midnight(last, m.tz, 1), "1h", m.tz)
    first = m.readings[0]["ts_ms"]
    assert len(week) == len(hours)
    for (start, end, local), value in zip(hours, week, strict=True):
        if start > last or end <= first:
            assert value is None, local
        else:
            assert value == pytest.approx(m.energy_wh(start, end), abs=0.5), local
    assert week[0] is None  # six days back: before the first reading
    month = json.loads(dom.by_id("chart-month")["attrs"]["data-values"])
    assert len(month) == 30
    assert month[:26] == [None] * 26 and all(v is not None for v in month[26:])
    assert sum(month[26:]) == pytest.approx(m.energy_wh(0, last + 1) / 1000, abs=0.001)

    href = dom.by_id("csv-today")["attrs"]["href"]
    with urllib.request.urlopen(site["url"] + href, timeout=30) as response:  # noqa: S310 - loopback
        lines = response.read().decode().splitlines()
    series = api(site, "/devices/box-web-berlin/energy")
    assert len(lines) == 1 + len(series["intervals"])
    assert lines[0] == ",".join(COLUMNS)
    at = COLUMNS.index("local_start")
    assert [line.split(",")[at] for line in lines[1:]] == [i["local_start"] for i in series["intervals"]]
    screenshot(site, "#/device/box-web-berlin", "device.png")

"""The API over a fleet the shard processor stored in moto, against the plain truth of fleet.py.

The clock is fixed on 25 October 2026, 14:00 in Berlin: the day the clocks go back, so Berlin's
day has 25 hours (100 quarters) and its 02:00 hour comes twice.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from api.app import READ_OPERATIONS, create_app
from consumer.query import COLUMNS
from consumer.settings import Settings
from sinks.registry import DeviceInfo
from tests.integration.api.fleet import MINUTE_MS, Meter, local_intervals, local_midnight, meter
from tests.integration.conftest import environment

pytestmark = pytest.mark.integration

NOW_MS = int(datetime(2026, 10, 25, 13, 0, tzinfo=UTC).timestamp() * 1000)
BERLIN_START_MS = int(datetime(2026, 10, 22, 22, 0, tzinfo=UTC).timestamp() * 1000)  # 23 Oct, local midnight
GAP = (NOW_MS - 4 * 3_600_000, NOW_MS - 4 * 3_600_000 + 5 * MINUTE_MS)  # five readings never sent, today


def fleet() -> list[Meter]:
    return [
        meter(
            "box-berlin",
            "Europe/Berlin",
            BERLIN_START_MS,
            NOW_MS - MINUTE_MS,
            info=DeviceInfo("box-berlin", "Europe/Berlin", name="Bakery", site="north", tags={"shop"}),
            skip=GAP,
        ),
        meter(
            "box-kolkata",
            "Asia/Kolkata",
            NOW_MS - 30 * 3_600_000,
            NOW_MS - 10 * MINUTE_MS,
            # A threshold below its draw: the consumer fires ``power_high`` for it, and only it.
            info=DeviceInfo("box-kolkata", "Asia/Kolkata", name="Pump", site="south", power_limit_w=1.0),
        ),
        meter("box-loose", "UTC", NOW_MS - 3 * 3_600_000, NOW_MS - 2 * MINUTE_MS, info=None),
        Meter("box-idle", "Europe/London", DeviceInfo("box-idle", "Europe/London", site="north")),
    ]


METERS = {m.device_id: m for m in fleet()}


@pytest.fixture(scope="module")
def env(stored_fleet) -> dict[str, str]:
    return stored_fleet(list(METERS.values()), NOW_MS)


@pytest.fixture(scope="module")
def calls(env) -> Counter:
    """Every DynamoDB operation the app sent, counted (a hook of the test's own)."""
    return Counter()


def make_client(env: dict[str, str], calls: Counter | None = None, **overrides: str) -> TestClient:
    with environment({**env, **overrides}):
        config = Settings()
        dynamodb = config.client("dynamodb")
        if calls is not None:
            dynamodb.meta.events.register(
                "before-call.dynamodb", lambda model, **_: calls.update([model.name]), unique_id="count"
            )
        return TestClient(create_app(config, client=dynamodb, now_ms=lambda: NOW_MS))


@pytest.fixture(scope="module")
def client(env, calls) -> TestClient:
    return make_client(env, calls)


def get(client: TestClient, calls: Counter, path: str, **params: str) -> tuple[dict, Counter]:
    before = Counter(calls)
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json(), calls - before


def expected_series(m: Meter, start_ms: int, end_ms: int, every: str) -> list[tuple[str, float | None]]:
    """(local start, Wh or None for no data) of every interval, from the meter alone."""
    first, last = m.readings[0]["ts_ms"], m.last["ts_ms"]
    out = []
    for a, b, local in local_intervals(start_ms, end_ms, every, m.tz):
        has_data = a <= last and b > first
        out.append((local, round(m.energy_wh(a, b), 6) if has_data else None))
    return out


def test_a_day_in_the_device_zone_by_default_every_quarter_of_the_long_day(client, calls) -> None:
    berlin = METERS["box-berlin"]
    body, used = get(client, calls, "/devices/box-berlin/energy")
    assert (body["tz"], body["every"]) == ("Europe/Berlin", "15m")
    assert (body["from"], body["to"]) == ("2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00")
    day = local_midnight(NOW_MS, "Europe/Berlin")
    want = expected_series(berlin, day, local_midnight(NOW_MS, "Europe/Berlin", 1), "15m")
    assert len(body["intervals"]) == 100  # 25 hours
    assert [i["local_start"] for i in body["intervals"]] == [w[0] for w in want]
    assert body["intervals"][8]["local_start"] == "2026-10-25T02:00:00+02:00"
    assert body["intervals"][12]["local_start"] == "2026-10-25T02:00:00+01:00"  # the hour again
    # The live view keeps the open hour's quarters as thousandths of the hour (sinks.live): there
    # a quarter is within a few thousandths of the hour's energy; the hour itself is exact.
    open_wh = open_hour_wh(berlin)
    for i, (local, want_wh) in zip(body["intervals"], want, strict=True):
        if want_wh is None:
            assert (i["energy_wh"], i["quality"]) == (None, "N"), local
        else:
            tolerance = 1e-6 if i["closed"] else 0.002 * open_wh
            assert i["energy_wh"] == pytest.approx(want_wh, abs=tolerance), local
    assert sum(
        i["energy_wh"] for i in body["intervals"] if not i["closed"] and i["energy_wh"] is not None
    ) == pytest.approx(open_wh, abs=1e-6)
    # After the newest reading (12:59 UTC), the day's quarters are gaps, not zeros.
    assert {i["quality"] for i in body["intervals"][-40:]} == {"N"}  # 13:00 to 24:00 UTC+1
    assert body["energy_wh"] == pytest.approx(berlin.energy_wh(day, NOW_MS), abs=1e-5)
    # Registry GetItem, its live group twice (the device check, the open hour), one Query.
    assert used == Counter({"GetItem": 3, "Query": 1})


@pytest.mark.parametrize(
    ("params", "every", "count"),
    [
        ({"from": "2026-10-19", "to": "2026-10-26", "every": "1h"}, "1h", 7 * 24 + 1),
        ({"from": "2026-09-26", "to": "2026-10-26"}, "1d", 30),
    ],
)
def test_week_by_hour_and_month_by_day_with_the_days_before_the_first_reading_as_gaps(
    client, calls, params, every, count
) -> None:
    berlin = METERS["box-berlin"]
    body, _ = get(client, calls, "/devices/box-berlin/energy", **params)
    assert (body["every"], len(body["intervals"])) == (every, count)
    start = local_midnight(int(datetime.fromisoformat(params["from"] + "T12:00+00:00").timestamp() * 1000), berlin.tz)
    want = expected_series(berlin, start, local_midnight(NOW_MS, berlin.tz, 1), every)
    assert [(i["local_start"]) for i in body["intervals"]] == [w[0] for w in want]
    for i, (_, want_wh) in zip(body["intervals"], want, strict=True):
        if want_wh is None:
            assert (i["energy_wh"], i["quality"]) == (None, "N"), i
        else:
            assert i["energy_wh"] == pytest.approx(want_wh, abs=1e-5), i
    if every == "1d":
        assert body["intervals"][-1]["duration_s"] == 25 * 3600


def test_csv_by_parameter_or_accept_header_holds_the_same_intervals(client, calls) -> None:
    body, _ = get(client, calls, "/devices/box-kolkata/energy", every="1h")
    by_param = client.get("/devices/box-kolkata/energy", params={"every": "1h", "format": "csv"})
    by_accept = client.get("/devices/box-kolkata/energy?every=1h", headers={"Accept": "text/csv"})
    assert by_param.text == by_accept.text
    assert by_param.headers["content-type"].startswith("text/csv")
    reader = csv.DictReader(io.StringIO(by_param.text))
    assert tuple(reader.fieldnames or ()) == COLUMNS  # the layout `wattstream query` prints
    rows = list(reader)
    assert [r["local_start"] for r in rows] == [i["local_start"] for i in body["intervals"]]
    assert rows[0]["local_start"].endswith("+05:30") and {r["register"] for r in rows} == {"1.8.0"}
    kolkata = METERS["box-kolkata"]
    for row, interval, (_, want_wh) in zip(
        rows,
        body["intervals"],
        expected_series(kolkata, local_midnight(NOW_MS, kolkata.tz), local_midnight(NOW_MS, kolkata.tz, 1), "1h"),
        strict=True,
    ):
        if want_wh is None:
            assert row["quality"] == "N" and float(row["energy_wh"]) == 0.0
        else:  # the open hour's quarters are thousandths of it (see the test above)
            tolerance = 1e-6 if interval["closed"] else 0.002 * open_hour_wh(kolkata)
            assert float(row["energy_wh"]) == pytest.approx(want_wh, abs=tolerance), row


def open_hour_wh(m: Meter) -> float:
    last = m.last["ts_ms"]
    return m.energy_wh(last - last % 3_600_000, last)


def today_expected(m: Meter) -> tuple[float | None, float | None]:
    if not m.readings:
        return None, None
    start = local_midnight(NOW_MS, m.tz)
    received = m.received(start, NOW_MS)
    missing = sum(1 for ts in range(GAP[0], GAP[1], MINUTE_MS) if start <= ts) if m.device_id == "box-berlin" else 0
    return m.energy_wh(start, NOW_MS), round(100 * received / (received + missing), 1)


def test_devices_lists_registry_and_live_view_with_today_and_pages(client, calls) -> None:
    body, used = get(client, calls, "/devices")
    rows = {d["device_id"]: d for d in body["devices"]}
    assert list(rows) == sorted(METERS) and body["next_cursor"] is None
    for device_id, m in METERS.items():
        row = rows[device_id]
        energy, completeness = today_expected(m)
        assert row["tz"] == m.tz and row["registered"] is (m.info is not None)
        if energy is None:
            assert (row["today_energy_wh"], row["last_seen"], row["power_w"]) == (None, None, None)
            continue
        assert row["today_energy_wh"] == pytest.approx(energy, abs=1e-5), device_id
        assert row["today_completeness_pct"] == completeness, device_id
        assert row["last_seen"] == datetime.fromtimestamp(m.last["ts_ms"] / 1000, UTC).isoformat(
            timespec="milliseconds"
        ).replace("+00:00", "Z")
        assert row["power_w"] == pytest.approx(m.last["power_w"])
    assert rows["box-berlin"]["today_completeness_pct"] < 100
    assert {d: [a["kind"] for a in row["alerts"]] for d, row in rows.items()} == {
        "box-berlin": [],
        "box-idle": [],
        "box-kolkata": ["power_high"],
        "box-loose": [],
    }
    # The registry Query, the live view in one BatchGetItem, per device two Queries and two
    # GetItems, and one Query of its alerts.
    assert used == Counter({"Query": 1 + 3 * 4, "BatchGetItem": 1, "GetItem": 2 * 4})

    first, _ = get(client, calls, "/devices", limit="3")
    second, _ = get(client, calls, "/devices", limit="3", cursor=first["next_cursor"])
    assert [d["device_id"] for d in first["devices"] + second["devices"]] == sorted(METERS)
    assert second["next_cursor"] is None
    north, _ = get(client, calls, "/devices", site="north")
    assert [d["device_id"] for d in north["devices"]] == ["box-berlin", "box-idle"]


def test_one_device_and_the_unknown_ones(client, calls) -> None:
    body, _ = get(client, calls, "/devices/box-berlin")
    assert (body["name"], body["site"], body["tags"], body["tz"]) == ("Bakery", "north", ["shop"], "Europe/Berlin")
    loose, _ = get(client, calls, "/devices/box-loose")
    assert (loose["registered"], loose["tz"]) == (False, "UTC")
    for path in ("/devices/box-nobody", "/devices/box-nobody/energy", "/devices/no%20such%20thing"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "no device" in response.json()["detail"]


def test_fleet_now_is_the_live_view(client, calls) -> None:
    body, used = get(client, calls, "/fleet/now")
    rows = {d["device_id"]: d for d in body["devices"]}
    assert sorted(rows) == ["box-berlin", "box-kolkata", "box-loose"]
    for device_id, row in rows.items():
        m = METERS[device_id]
        last = m.last["ts_ms"]
        hour = last - last % 3_600_000
        assert row["hour_energy_wh"] == pytest.approx(m.energy_wh(hour, last), abs=1e-3)
        assert row["hour_samples"] == m.received(hour, last + 1)
        assert row["power_w"] == pytest.approx(m.last["power_w"])
    assert rows["box-berlin"]["name"] == "Bakery" and rows["box-loose"]["name"] is None
    # The live view, the page's registry entries, then each device's alerts.
    assert used == Counter({"BatchGetItem": 2, "Query": 3})
    assert [a["kind"] for a in rows["box-kolkata"]["alerts"]] == ["power_high"] and rows["box-loose"]["alerts"] == []


@pytest.mark.parametrize(
    ("path", "params", "status", "says"),
    [
        ("/devices/box-berlin/energy", {"tz": "Mars/Olympus"}, 400, "unknown time zone"),
        ("/devices/box-berlin/energy", {"from": "2026-10-25", "to": "2026-10-24"}, 400, "after"),
        ("/devices/box-berlin/energy", {"from": "2026-01-01", "to": "2026-12-01", "every": "15m"}, 400, "intervals"),
        ("/devices/box-berlin/energy", {"every": "7m"}, 400, "every must be"),
        ("/devices/box-berlin/energy", {"from": "yesterday"}, 400, "neither a date"),
        ("/devices", {"limit": "0"}, 422, ""),
        ("/devices", {"format": "xml"}, 422, ""),
    ],
)
def test_bad_requests_are_refused_with_what_is_wrong(client, path, params, status, says) -> None:
    response = client.get(path, params=params)
    assert response.status_code == status, response.text
    assert says in str(response.json()["detail"])


def test_a_token_guards_the_api_not_the_page(env) -> None:
    guarded = make_client(env, WATTSTREAM_API_TOKEN="s3cret-token")
    assert guarded.get("/devices").status_code == 401
    assert guarded.get("/devices", headers={"Authorization": "Bearer s3cret-tokex"}).status_code == 401
    ok = guarded.get("/fleet/now", headers={"Authorization": "Bearer s3cret-token"})
    assert ok.status_code == 200
    assert guarded.get("/devices").headers["www-authenticate"] == "Bearer"
    for open_path in ("/", "/docs", "/openapi.json", "/static/app.js", "/static/vendor/uPlot.iife.min.js"):
        assert guarded.get(open_path).status_code == 200, open_path


def test_cors_answers_the_configured_origins_only(env) -> None:
    app = make_client(env, WATTSTREAM_API_CORS_ORIGINS="https://grafana.example, https://ops.example")
    allowed = app.get("/fleet/now", headers={"Origin": "https://ops.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://ops.example"
    other = app.get("/fleet/now", headers={"Origin": "https://elsewhere.example"})
    assert "access-control-allow-origin" not in other.headers


def test_every_route_reads_and_none_writes(client, calls, env) -> None:
    # Run last in this module: by now every route above has been called through this client.
    assert calls, "no call was counted"
    assert set(calls) <= READ_OPERATIONS - {"DescribeTable"}, calls
    with environment(env):
        dynamodb = Settings().client("dynamodb")
    from api.app import WriteRefusedError, refuse_writes

    refuse_writes(dynamodb)
    with pytest.raises(WriteRefusedError):
        dynamodb.put_item(TableName=env["WATTSTREAM_AGGREGATES_TABLE"], Item={"device_id": {"S": "x"}})

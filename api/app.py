"""The HTTP application: the read-only API (JSON or CSV) and the fleet page, in one process.

Routes (OpenAPI at ``/docs``)::

    GET /devices                      registry + live view, a page of devices with today's figures
    GET /devices/{id}                 one device
    GET /devices/{id}/energy          every interval of a range: ?from&to&every&tz
    GET /fleet/now                    every device of the live view: newest reading, open hour
    GET /health                       the process is up (reads nothing)
    GET /                             the fleet page (static files, api/static/)

Read-only by construction: the DynamoDB client the app gets refuses every write operation
before it is sent (``refuse_writes``), so no code path here can change a stored byte.

Each answer is JSON, or CSV with ``?format=csv`` or ``Accept: text/csv``; a device's energy as CSV
is the canonical interval layout of ``wattstream query`` (``consumer.query``). With a token set
(``WATTSTREAM_API_TOKEN``) every API route asks for ``Authorization: Bearer <token>``; the page,
its files and the docs hold no data and stay open.
"""

from __future__ import annotations

import csv
import hmac
import io
import time
from collections.abc import Callable, Iterable, Sequence
from importlib import resources
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles

from api.errors import ApiError, NotFoundError
from api.fleet import DeviceRow, NowRow, alert_states, device_row, now_row, page, today
from api.series import check_zone, read_energy, resolve, to_local
from consumer.query import COLUMNS as CSV_COLUMNS
from consumer.query import rows as csv_rows
from consumer.settings import Settings
from readings import to_rfc3339
from readings.models import is_thing_name
from sinks.live import device_attr, parse_entry
from sinks.read import Interval, live_devices, live_values
from sinks.registry import DEFAULT_TZ, RegistryStore

READ_OPERATIONS = frozenset({"GetItem", "BatchGetItem", "Query", "DescribeTable"})
"""Every DynamoDB operation the app may send; anything else is refused before it leaves."""
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
ENERGY_COLUMNS = (
    "device_id",
    "start",
    "local_start",
    "duration_s",
    "energy_wh",
    "export_wh",
    "net_wh",
    "power_mean_w",
    "power_max_w",
    "samples",
    "quality",
    "closed",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(HTTPBearer(auto_error=False))]
Format = Annotated[str | None, Query(pattern="^(json|csv)$", description="csv, or json (the default)")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Devices per page.")]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the page before.")]


class WriteRefusedError(ApiError):
    status = 500


def refuse_writes(client: Any) -> Any:
    """``client`` with a hook that raises before any operation outside ``READ_OPERATIONS``."""

    def check(model: Any, **_: Any) -> None:
        if model.name not in READ_OPERATIONS:
            raise WriteRefusedError(f"the API is read-only: {model.name} refused")

    client.meta.events.register("before-call.dynamodb", check)
    return client


def create_app(
    settings: Settings | None = None, *, client: Any = None, now_ms: Callable[[], int] | None = None
) -> FastAPI:
    """The application over ``settings``' tables; ``client`` and ``now_ms`` for tests."""
    settings = settings or Settings()
    dynamodb = refuse_writes(client if client is not None else settings.client("dynamodb"))
    table = settings.aggregates_table
    groups = settings.live_groups
    registry = RegistryStore(dynamodb, table)
    clock = now_ms or (lambda: int(time.time() * 1000))
    token = settings.api_token.get_secret_value()

    app = FastAPI(
        title="wattstream",
        summary="Read-only energy of a fleet of meters: devices, intervals in local time, the live view.",
        version="1",
    )
    if settings.api_cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api_cors_origin_list,
            allow_methods=["GET"],
            allow_headers=["Authorization", "Accept"],
        )

    def authorised(credentials: Credentials) -> None:
        if not token:
            return
        given = credentials.credentials if credentials else ""
        # Constant time: how long the check takes says nothing about how much of the token matched.
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise _Unauthorised()

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(_Unauthorised)
    async def unauthorised(request: Request, exc: _Unauthorised) -> JSONResponse:
        return JSONResponse(
            {"detail": "a bearer token is required (Authorization: Bearer <token>)"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    guard = [Depends(authorised)]

    def known(device_id: str) -> tuple[Any, dict[str, Any] | None]:
        if not is_thing_name(device_id):
            raise NotFoundError(f"no device {device_id[:130]!r}")
        info = registry.get(device_id)
        found = live_values(dynamodb, table, device_id, live_groups=groups)
        live = parse_entry(found[device_attr(device_id)]) if found else None
        if info is None and live is None:
            raise NotFoundError(f"no device {device_id!r}: neither registered nor ever reported")
        return info, live

    def day_of(device_id: str, tz: str, live: dict[str, Any] | None, now: int) -> Any:
        return today(
            dynamodb,
            table,
            device_id,
            tz,
            now_ms=now,
            last_seen_ms=None if live is None else int(live["ts_ms"]),
            live_groups=groups,
            silence_limit_s=settings.silence_limit_s,
        )

    @app.get("/devices", dependencies=guard, summary="A page of devices with today's figures")
    def devices(
        request: Request,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
        site: Annotated[str | None, Query(description="Only registered devices at this site.")] = None,
        tag: Annotated[str | None, Query(description="Only registered devices with this tag.")] = None,
        format: Format = None,
    ) -> Response:
        """Registered devices and devices of the live view, by id: name, site, zone, last seen,
        current power, today's energy (local midnight to now), its quality and completeness."""
        now = clock()
        entries = {info.device_id: info for info in registry.list(site=site, tag=tag)}
        live = live_devices(dynamodb, table, live_groups=groups)
        ids = entries if site is not None or tag is not None else {*entries, *live}
        taken, next_cursor = page(ids, limit, cursor)
        alerts = alert_states(dynamodb, table, taken)
        rows: list[DeviceRow] = []
        for device_id in taken:
            info = entries.get(device_id)
            tz = info.tz if info else DEFAULT_TZ
            mine = live.get(device_id)
            rows.append(device_row(device_id, info, mine, day_of(device_id, tz, mine, now), _alerts(alerts, device_id)))
        return _answer(
            request,
            format,
            {"devices": [r.to_dict() for r in rows], "next_cursor": next_cursor},
            [r.to_dict() for r in rows],
            filename="devices.csv",
        )

    @app.get("/devices/{device_id}", dependencies=guard, summary="One device")
    def device(request: Request, device_id: str, format: Format = None) -> Response:
        """The device's registry entry, newest reading and today's figures; 404 when unknown."""
        info, live = known(device_id)
        tz = info.tz if info else DEFAULT_TZ
        row = device_row(
            device_id,
            info,
            live,
            day_of(device_id, tz, live, clock()),
            _alerts(alert_states(dynamodb, table, [device_id]), device_id),
        )
        body = {
            **row.to_dict(),
            "tariff": info.tariff if info else None,
            "tags": sorted(info.tags) if info else [],
            "power_limit_w": info.power_limit_w if info else None,
            "daily_budget_kwh": info.daily_budget_kwh if info else None,
        }
        return _answer(request, format, body, [row.to_dict()], filename=f"{device_id}.csv")

    @app.get("/devices/{device_id}/energy", dependencies=guard, summary="A device's energy per interval")
    def energy(
        request: Request,
        device_id: str,
        start: Annotated[
            str | None,
            Query(alias="from", description="A date (local midnight) or RFC 3339; default: today's midnight."),
        ] = None,
        end: Annotated[
            str | None, Query(alias="to", description="End, exclusive; default: the midnight after `from`.")
        ] = None,
        every: Annotated[
            str | None, Query(description="15m, 30m, 1h, 1d or 1mo; default: 15m up to 2 days, 1h up to 14, then 1d.")
        ] = None,
        tz: Annotated[str | None, Query(description="IANA zone; default: the device's (registry), else UTC.")] = None,
        format: Format = None,
    ) -> Response:
        """Every interval of the range in the zone, with and without data, in time order.

        An interval without data has quality `N` and no energy (null): a gap, not a zero.
        Quality `A`: every reading arrived; `E`: some energy is spread across a silence.
        """
        if tz is not None:
            check_zone(tz)
        info, _ = known(device_id)
        zone = tz or (info.tz if info else DEFAULT_TZ)
        found = resolve(start, end, every, zone, now_ms=clock())
        intervals = read_energy(dynamodb, table, device_id, found, live_groups=groups)
        rows = [_interval(i) for i in intervals]
        body = {
            "device_id": device_id,
            "tz": zone,
            "every": found.every,
            "from": to_local(found.start_ms, zone),
            "to": to_local(found.end_ms, zone),
            "energy_wh": round(sum(i.energy_wh for i in intervals if i.quality != "N"), 6),
            "intervals": rows,
        }
        if not _wants_csv(request, format):
            return JSONResponse(body)
        # The CSV is the canonical interval layout, the very one `wattstream query` prints.
        return _answer(
            request, format, body, csv_rows(intervals), columns=CSV_COLUMNS, filename=f"{device_id}-energy.csv"
        )

    @app.get("/fleet/now", dependencies=guard, summary="Every device of the live view, now")
    def fleet_now(
        request: Request,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
        format: Format = None,
    ) -> Response:
        """Each reporting device's newest reading (time, power, register) and its open hour."""
        live = live_devices(dynamodb, table, live_groups=groups)
        taken, next_cursor = page(live, limit, cursor)
        entries = registry.get_many(taken) if taken else {}
        alerts = alert_states(dynamodb, table, taken)
        rows: list[NowRow] = [now_row(d, live[d], entries.get(d), _alerts(alerts, d)) for d in taken]
        return _answer(
            request,
            format,
            {"devices": [r.to_dict() for r in rows], "next_cursor": next_cursor},
            [r.to_dict() for r in rows],
            filename="fleet-now.csv",
        )

    @app.get("/health", summary="The process is up", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    static = resources.files("api") / "static"

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(str(static / "index.html"), headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    return app


class _Unauthorised(Exception):  # noqa: N818 - answered as a 401, never raised past the app
    pass


def _alerts(found: dict[str, list[dict[str, Any]]] | None, device_id: str) -> list[dict[str, Any]] | None:
    return None if found is None else found.get(device_id, [])


def _interval(i: Interval) -> dict[str, Any]:
    gap = i.quality == "N"
    return {
        "device_id": i.device_id,
        "start": to_rfc3339(i.start_ms),
        "local_start": i.local_start,
        "duration_s": i.duration_s,
        "energy_wh": None if gap else round(i.energy_wh, 6),
        "export_wh": None if gap else round(i.export_wh, 6),
        "net_wh": None if gap else round(i.net_wh, 6),
        "power_mean_w": None if gap else round(i.power_mean_w, 3),
        "power_max_w": i.power_max_w,
        "samples": i.samples,
        "quality": i.quality,
        "closed": i.closed,
    }


def _wants_csv(request: Request, fmt: str | None) -> bool:
    if fmt is not None:
        return fmt == "csv"
    return "text/csv" in request.headers.get("accept", "")


def _answer(
    request: Request,
    fmt: str | None,
    body: dict[str, Any],
    rows: Sequence[dict[str, Any]],
    *,
    columns: Iterable[str] | None = None,
    filename: str,
) -> Response:
    if not _wants_csv(request, fmt):
        return JSONResponse(body)
    names = list(columns or (rows[0].keys() if rows else ()))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(names)
    for row in rows:
        writer.writerow([_cell(row.get(name)) for name in names])
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(str(v.get("kind", v)) if isinstance(v, dict) else str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return value

"""The Grafana dashboard over the API calls routes the app has, with parameters it takes."""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from api.app import ENERGY_COLUMNS, create_app
from api.fleet import DeviceRow, NowRow
from consumer.settings import Settings

REPO = Path(__file__).resolve().parents[3]
DASHBOARD = REPO / "docker" / "grafana" / "dashboards" / "wattstream-energy.json"
DATASOURCE = REPO / "docker" / "grafana" / "provisioning" / "datasources" / "wattstream-api.yml"
SELECTORS = {
    "/devices": {f.name for f in fields(DeviceRow)},
    "/fleet/now": {f.name for f in fields(NowRow)},
    "/devices/{device_id}/energy": set(ENERGY_COLUMNS),
}
"""Per route, the keys of the rows its answer lists (the dashboard's column selectors)."""


def queries(node: Any) -> list[dict[str, Any]]:
    """Every Infinity query of the dashboard: panel targets and the variable's query."""
    found = []
    if isinstance(node, dict):
        if node.get("source") == "url" and "url" in node:
            found.append(node)
        for value in node.values():
            found.extend(queries(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(queries(value))
    return found


@pytest.fixture(scope="module")
def app():
    client = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    return create_app(Settings(), client=client)


def route_of(app, path: str) -> str:
    """The app's GET route whose pattern matches ``path``; fails when there is none."""
    for route in app.routes:
        pattern = re.sub(r"\{[^}]+\}", "[^/]+", getattr(route, "path", ""))
        if "GET" in getattr(route, "methods", ()) and re.fullmatch(pattern, path):
            return route.path
    raise AssertionError(f"the dashboard calls {path}, a route the app does not have")


def test_every_url_the_dashboard_calls_is_a_route_with_its_parameters(app) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    spec = app.openapi()["paths"]
    found = queries(dashboard)
    assert len(found) >= 4
    routes = set()
    for query in found:
        path = query["url"].replace("${device}", "box-0001")
        assert "$" not in path, path
        route = route_of(app, path)
        routes.add(route)
        accepted = {p["name"] for p in spec[route]["get"].get("parameters", []) if p["in"] == "query"}
        given = {p["key"] for p in query["url_options"]["params"]}
        assert given <= accepted, (route, sorted(given - accepted))
        # The columns it reads are keys of the rows the route lists under root_selector.
        assert query["root_selector"] in {"devices", "intervals"}
        assert {c["selector"] for c in query["columns"]} <= SELECTORS[route], route
    assert routes == {"/devices", "/devices/{device_id}/energy", "/fleet/now"}
    every = {p["value"] for q in found for p in q["url_options"]["params"] if p["key"] == "every"}
    assert every == {"15m", "1h", "1d"}


def test_the_datasource_points_at_the_serve_service(app) -> None:
    source = yaml.safe_load(DATASOURCE.read_text())["datasources"][0]
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert "yesoreyeram-infinity-datasource" in compose["services"]["grafana"]["environment"]["GF_INSTALL_PLUGINS"]
    assert compose["services"]["serve"]["ports"] == ["127.0.0.1:8080:8080"]
    assert source["url"] == "http://serve:8080" and source["type"] == "yesoreyeram-infinity-datasource"
    dashboard = json.loads(DASHBOARD.read_text())
    uids = {q["datasource"]["uid"] for q in queries(dashboard) if "datasource" in q}
    uids |= {p["datasource"]["uid"] for p in dashboard["panels"]}
    assert uids == {source["uid"]}

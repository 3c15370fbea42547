"""The compose file, the Dockerfiles, Prometheus and Grafana config, checked without an engine."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.integration.stack.compose import (
    COMPOSE_FILE,
    REPO,
    dockerfile_of,
    dockerfile_stages,
    final_stage,
    image_cmd,
    image_env,
    image_healthcheck,
    load_compose,
    our_services,
    service_environment,
    volume_mounts,
)

pytestmark = pytest.mark.integration

CONSUMER_DOCKERFILE = REPO / "docker" / "consumer.Dockerfile"
DEVICE_DOCKERFILE = REPO / "docker" / "device.Dockerfile"
SERVE_DOCKERFILE = REPO / "docker" / "serve.Dockerfile"


def compose_validator() -> list[str] | None:
    """`docker-compose` (Debian's v1, validates offline) or the `docker compose` v2 plugin."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return None


def test_compose_file_validates() -> None:
    validator = compose_validator()
    if validator is None:
        pytest.skip("no compose validator: apt-get install -y docker-compose (Debian's v1 validates offline)")
    result = subprocess.run(
        [*validator, "-f", str(COMPOSE_FILE), "config", "-q"], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert result.returncode == 0, result.stderr


def _git_ignored(path: str) -> bool:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        return False
    return subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO).returncode == 0


def test_compose_services_reference_what_exists() -> None:
    compose = load_compose()
    services = compose["services"]
    assert {
        "localstack",
        "init",
        "certs",
        "mosquitto",
        "bridge",
        "consumer",
        "devices",
        "prometheus",
        "grafana",
    } <= set(services)
    for name, svc in services.items():
        dockerfile = dockerfile_of(svc)
        if dockerfile:
            assert dockerfile.exists(), f"{name}: {dockerfile} missing"
        for source, _target in volume_mounts(svc):
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name}: bind mount {source} missing"
                assert not _git_ignored(source), f"{name}: bind mount {source} is git-ignored (never committed)"
            else:
                assert source in (compose.get("volumes") or {}), f"{name}: volume {source} not declared"
        mode = svc.get("network_mode", "")
        if mode.startswith("service:"):
            assert mode.split(":", 1)[1] in services
    # Ports the Prometheus config scrapes are the ones the services serve.
    consumer_env = {**image_env(CONSUMER_DOCKERFILE), **service_environment(services["consumer"])}
    assert consumer_env["WATTSTREAM_METRICS_PORT"] == "9108"
    bridge_cmd = services["bridge"]["command"]
    assert bridge_cmd[bridge_cmd.index("--metrics-port") + 1] == "9109"
    # The broker certificate names the service the clients connect to.
    certs_script = (REPO / "docker" / "tls" / "issue-certs.sh").read_text()
    for client in ("bridge", "devices"):
        cmd = services[client]["command"]
        host = cmd[cmd.index("--host") + 1]
        assert host == "mosquitto" and f'--server-name "${{BROKER_HOST:-{host}}}"' in certs_script
    prometheus = yaml.safe_load((REPO / "docker" / "prometheus" / "prometheus.yml").read_text())
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in prometheus["scrape_configs"]}
    assert targets["consumer"] == ["consumer:9108"]
    assert targets["bridge"] == ["bridge:9109"]


def test_every_wattstream_setting_named_exists() -> None:
    """pydantic-settings ignores unknown variables: a typo here would silently do nothing."""
    from bridge.settings import BridgeSettings
    from consumer.settings import Settings

    known = {f"WATTSTREAM_{name.upper()}" for name in (*Settings.model_fields, *BridgeSettings.model_fields)}
    compose = load_compose()
    named = {
        k for svc in our_services(compose).values() for k in service_environment(svc) if k.startswith("WATTSTREAM_")
    }
    for dockerfile in (CONSUMER_DOCKERFILE, DEVICE_DOCKERFILE):
        named |= {k for k in image_env(dockerfile) if k.startswith("WATTSTREAM_")}
    assert named and named <= known, sorted(named - known)


def test_prometheus_config_is_valid() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    result = subprocess.run(
        [promtool, "check", "config", str(REPO / "docker" / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_consumer_image_meets_the_ecs_task_contract() -> None:
    """docs/deploy.md, "The image": uid 10001, volumes, PATH, health check, a plain CMD."""
    stage = final_stage(CONSUMER_DOCKERFILE)
    by = lambda keyword: [i.args for i in stage if i.keyword == keyword]  # noqa: E731
    assert by("FROM")[0].startswith("${PYTHON_IMAGE}")
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in CONSUMER_DOCKERFILE.read_text()
    assert any("openjdk-17-jre-headless" in run for run in by("RUN"))
    assert any("chown -R 10001:10001 /var/lib/wattstream" in run for run in by("RUN"))
    assert by("USER") == ["10001:10001"]
    assert json.loads(by("VOLUME")[-1]) == ["/var/lib/wattstream", "/tmp"]
    assert not by("ENTRYPOINT"), "the ECS task's command must replace the CMD, not be passed to an ENTRYPOINT"
    assert image_cmd(CONSUMER_DOCKERFILE) == ["wattstream", "consume"]
    env = image_env(CONSUMER_DOCKERFILE)
    assert env["PATH"].startswith("/opt/wattstream/bin:")
    assert env["WATTSTREAM_WORK_DIR"].startswith("/var/lib/wattstream/")
    assert env["WATTSTREAM_METRICS_DIR"].startswith("/var/lib/wattstream/")
    health = image_healthcheck(CONSUMER_DOCKERFILE)
    assert health[0] == "python" and "urllib.request" in health[-1] and "/metrics" in health[-1]
    # The build stage checks the KCL jars, so a build without them fails.
    build = dockerfile_stages(CONSUMER_DOCKERFILE)[0]
    assert any("consumer.jars --check" in i.args for i in build if i.keyword == "RUN")


def test_device_image_runs_as_10001_without_java() -> None:
    stage = final_stage(DEVICE_DOCKERFILE)
    assert [i.args for i in stage if i.keyword == "USER"] == ["10001:10001"]
    assert "openjdk" not in DEVICE_DOCKERFILE.read_text().split("FROM ${PYTHON_IMAGE}\n")[-1]
    assert image_cmd(DEVICE_DOCKERFILE)[0] == "wattstream"


def _dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule, enough for our .dockerignore: the last matching pattern (or a parent's) wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.rstrip("/")
        if any(fnmatch.fnmatchcase(c, pat) for c in candidates):
            excluded = not negate
    return excluded


def _build_stage(dockerfile: Path) -> list:
    """The stage that installs the package (the serve image builds its chart files first)."""
    return next(
        s for s in dockerfile_stages(dockerfile) if any("pip install" in i.args for i in s if i.keyword == "RUN")
    )


@pytest.mark.parametrize("dockerfile", [CONSUMER_DOCKERFILE, DEVICE_DOCKERFILE, SERVE_DOCKERFILE], ids=lambda p: p.name)
def test_build_context_builds_the_package(dockerfile: Path, tmp_path: Path) -> None:
    """What the build stage COPYs, filtered by .dockerignore, is enough to build the package."""
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    context = tmp_path / "context"
    for ins in _build_stage(dockerfile):
        if ins.keyword != "COPY" or ins.args.startswith("--from"):
            continue
        *sources, dest = ins.args.split()
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: not in the repository"
            files = [REPO / source] if (REPO / source).is_file() else sorted((REPO / source).rglob("*"))
            for file in files:
                rel = file.relative_to(REPO).as_posix()
                if file.is_file() and not _dockerignore_excludes(rel, patterns):
                    target = context / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(file, target)
            assert not _dockerignore_excludes(source.rstrip("/"), patterns), f"COPY {source}: excluded by .dockerignore"
    assert _dockerignore_excludes(".venv/bin/python", patterns)
    assert _dockerignore_excludes("node_modules/x", patterns) and _dockerignore_excludes(".git/HEAD", patterns)
    # An sdist through the package's own build backend: it fails on a missing readme or package.
    script = "import sys; from setuptools import build_meta; print(build_meta.build_sdist(sys.argv[1]))"
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "dist")], cwd=context, capture_output=True, text=True, timeout=110
    )
    assert result.returncode == 0, result.stdout + result.stderr
    sdist = tmp_path / "dist" / result.stdout.strip().splitlines()[-1]
    import tarfile

    with tarfile.open(sdist) as archive:
        names = [n.split("/", 1)[1] for n in archive.getnames() if "/" in n]
    # Each image holds its own packages only; the local dev kit is in neither.
    own = {
        "consumer.Dockerfile": ("readings", "batcher", "sinks", "consumer"),
        "device.Dockerfile": ("readings", "batcher", "sinks", "consumer", "device", "bridge"),
        "serve.Dockerfile": ("readings", "batcher", "sinks", "consumer", "api"),
    }[dockerfile.name]
    packages = {n.split("/", 1)[0] for n in names if n.endswith("/__init__.py")}
    assert packages == set(own), packages
    assert not any(n.startswith("devstack/") for n in names)
    assert "consumer/resources/kcl-pom.xml" in names, "the KCL pom and logback config"
    # Installed with the image's extra only: its dependencies, nothing of the other image's.
    install = " ".join(i.args for i in _build_stage(dockerfile) if i.keyword == "RUN" and "pip install" in i.args)
    extra = {
        "consumer.Dockerfile": "'.[consumer]'",
        "device.Dockerfile": "'.[device]'",
        "serve.Dockerfile": "'.[api]'",
    }[dockerfile.name]
    assert extra in install, install


def _metric_names() -> set[str]:
    """Every sample name the consumer and the bridge can expose."""
    from prometheus_client import REGISTRY

    import bridge.metrics  # noqa: F401 - registers the metrics
    import consumer.metrics  # noqa: F401

    names: set[str] = set()
    for family in REGISTRY.collect():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names |= {f"{family.name}_bucket", f"{family.name}_sum", f"{family.name}_count"}
        else:
            names.add(family.name)
    return names


def dashboard_targets() -> list[tuple[str, str]]:
    dashboard = json.loads((REPO / "docker" / "grafana" / "dashboards" / "wattstream.json").read_text())
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_grafana_provisioning_and_dashboard() -> None:
    provisioning = REPO / "docker" / "grafana" / "provisioning"
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((provisioning / "dashboards" / "wattstream.yml").read_text())["providers"][0]
    grafana = load_compose()["services"]["grafana"]
    mounts = dict((t, s) for s, t in volume_mounts(grafana))
    assert mounts[provider["options"]["path"]] == "./docker/grafana/dashboards"
    assert mounts["/etc/grafana/provisioning"] == "./docker/grafana/provisioning"

    dashboard = json.loads((REPO / "docker" / "grafana" / "dashboards" / "wattstream.json").read_text())
    assert dashboard["uid"] and dashboard["panels"]
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
    known = _metric_names()
    used = set()
    for title, expr in dashboard_targets():
        names = set(re.findall(r"\bwattstream_[a-z0-9_]+\b", expr))
        assert names, f"{title}: {expr}"
        assert names <= known, f"{title}: unknown metric {sorted(names - known)}"
        used |= names
    # The README's headline metrics all have a panel.
    for name in (
        "wattstream_records_total",
        "wattstream_batches_flushed_total",
        "wattstream_flush_duration_seconds_bucket",
        "wattstream_dynamodb_writes_total",
        "wattstream_millis_behind_latest",
        "wattstream_rejected_total",
        "wattstream_energy_wh_total",
        "wattstream_readings_stored_total",
        "wattstream_batch_records_bucket",
    ):
        assert name in used, name

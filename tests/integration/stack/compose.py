"""Read docker-compose.yml and the Dockerfiles, and turn a service into a native command.

No Docker engine runs here, so the stack tests run each container's command with the project's
virtualenv instead: the command (or the image's CMD), the image's ENV and the service's
environment, with every container path on a volume moved to a folder of the test, container
ports moved to free ports, and the AWS endpoints replaced by the test's emulators.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
COMPOSE_FILE = REPO / "docker-compose.yml"
VENV_BIN = Path(sys.executable).parent


def load_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


# -- Dockerfiles ------------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    args: str

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form CMD/ENTRYPOINT/HEALTHCHECK CMD, else None."""
        text = self.args
        if self.keyword == "HEALTHCHECK":
            _, _, text = text.partition(" CMD ")
            if not text:
                return None
        text = text.strip()
        if not text.startswith("["):
            return None
        value = json.loads(text)
        return value if isinstance(value, list) else None


def dockerfile_stages(path: Path) -> list[list[Instruction]]:
    """The instructions of each stage from its FROM (continuations joined, comments dropped)."""
    stages: list[list[Instruction]] = [[]]
    logical = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not logical and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            logical += line[:-1].strip() + " "
            continue
        logical += line
        keyword, _, args = logical.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stages.append([])
        stages[-1].append(Instruction(keyword, args.strip()))
        logical = ""
    return [stage for stage in stages if stage and stage[0].keyword == "FROM"]


def final_stage(path: Path) -> list[Instruction]:
    return dockerfile_stages(path)[-1]


def image_env(path: Path) -> dict[str, str]:
    """ENV of the final stage (``KEY=value`` pairs; values without spaces, as ours are)."""
    env: dict[str, str] = {}
    for ins in final_stage(path):
        if ins.keyword == "ENV":
            for pair in shlex.split(ins.args):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def image_volumes(path: Path) -> list[str]:
    volumes: list[str] = []
    for ins in final_stage(path):
        if ins.keyword == "VOLUME":
            volumes += json.loads(ins.args) if ins.args.startswith("[") else ins.args.split()
    return volumes


def image_cmd(path: Path) -> list[str]:
    cmds = [ins for ins in final_stage(path) if ins.keyword == "CMD"]
    assert cmds, f"{path} has no CMD"
    form = cmds[-1].exec_form()
    assert form, f"the CMD of {path} is not in exec form"
    return form


def image_healthcheck(path: Path) -> list[str]:
    checks = [ins for ins in final_stage(path) if ins.keyword == "HEALTHCHECK"]
    assert checks, f"{path} has no HEALTHCHECK"
    form = checks[-1].exec_form()
    assert form, f"the HEALTHCHECK of {path} is not in exec form"
    return form


# -- services ---------------------------------------------------------------------------------


def dockerfile_of(service: dict[str, Any]) -> Path | None:
    build = service.get("build")
    if not build:
        return None
    if isinstance(build, str):
        return REPO / build / "Dockerfile"
    return (REPO / build.get("context", ".") / build.get("dockerfile", "Dockerfile")).resolve()


def our_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Services built from this repository's Dockerfiles."""
    return {name: svc for name, svc in compose["services"].items() if dockerfile_of(svc)}


_VARIABLE = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    """Compose's ``${NAME}`` and ``${NAME:-default}`` in a value, from ``variables``."""
    return _VARIABLE.sub(lambda m: variables.get(m.group(1)) or (m.group(2) or ""), text)


def service_environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else interpolate(str(v), os.environ) for k, v in env.items()}


def volume_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each volume: a named volume or a path relative to the repo."""
    mounts = []
    for spec in service.get("volumes") or []:
        if isinstance(spec, dict):
            mounts.append((spec["source"], spec["target"]))
        else:
            source, target = spec.split(":")[:2]
            mounts.append((source, target))
    return mounts


@dataclass
class NativeRewrite:
    """How container paths, ports and endpoints map onto this machine for one test."""

    volumes_root: Path
    ports: dict[int, int] = field(default_factory=dict)
    aws_env: dict[str, str] = field(default_factory=dict)
    overrides: dict[str, str] = field(default_factory=dict)
    hosts: dict[str, str] = field(default_factory=dict)
    """Service names the commands connect to -> the address that serves them here."""

    def path_map(self, service: dict[str, Any]) -> list[tuple[str, Path]]:
        mapping = []
        for source, target in volume_mounts(service):
            if source.startswith((".", "/")):
                host = (REPO / source).resolve()
            else:
                host = self.volumes_root / source
                host.mkdir(parents=True, exist_ok=True)
            mapping.append((target.rstrip("/"), host))
        for target in service.get("tmpfs") or []:
            host = self.volumes_root / ("tmpfs" + target.replace("/", "_"))
            host.mkdir(parents=True, exist_ok=True)
            mapping.append((target.rstrip("/"), host))
        # A VOLUME of the image that the service does not mount gets an anonymous volume.
        dockerfile = dockerfile_of(service)
        mounted = {target for target, _ in mapping}
        for target in image_volumes(dockerfile) if dockerfile else []:
            if target not in mounted:
                host = self.volumes_root / f"anonymous-{dockerfile.stem}{target.replace('/', '_')}"
                host.mkdir(parents=True, exist_ok=True)
                mapping.append((target, host))
        # Longest first, so /var/lib/wattstream/x wins over /var/lib/wattstream.
        return sorted(mapping, key=lambda item: len(item[0]), reverse=True)

    def value(self, text: str, paths: list[tuple[str, Path]]) -> str:
        for target, host in paths:
            if text == target or text.startswith(target + "/"):
                return str(host) + text[len(target) :]
        if text.isdigit() and int(text) in self.ports:
            return str(self.ports[int(text)])
        return self.hosts.get(text, text)

    def command(self, service: dict[str, Any]) -> list[str]:
        dockerfile = dockerfile_of(service)
        assert dockerfile is not None
        argv = list(service.get("command") or image_cmd(dockerfile))
        paths = self.path_map(service)
        argv = [self.value(arg, paths) for arg in argv]
        if argv[0] in ("wattstream", "python"):
            argv[0] = str(VENV_BIN / argv[0])
        return argv

    def environment(self, service: dict[str, Any], base: dict[str, str]) -> dict[str, str]:
        dockerfile = dockerfile_of(service)
        assert dockerfile is not None
        paths = self.path_map(service)
        declared = {k: v for k, v in image_env(dockerfile).items() if k != "PATH"}
        declared.update(service_environment(service))
        env = {k: v for k, v in base.items() if not k.startswith(("AWS_", "WATTSTREAM_"))}
        env.update({k: self.value(v, paths) for k, v in declared.items() if not k.startswith("AWS_ENDPOINT_URL")})
        env.update(self.aws_env)
        env.update(self.overrides)
        env["PATH"] = f"{VENV_BIN}:{base.get('PATH', '/usr/bin:/bin')}"
        return env

    def leftover_container_paths(self, service: dict[str, Any]) -> list[str]:
        """Container paths in the command or the settings that are on no volume.

        A read-only container could not write them, and natively they would point outside
        the test's folders.
        """
        dockerfile = dockerfile_of(service)
        assert dockerfile is not None
        paths = self.path_map(service)
        declared = {**image_env(dockerfile), **service_environment(service)}
        values = [
            *self.command(service)[1:],
            *(self.value(v, paths) for k, v in declared.items() if k.startswith("WATTSTREAM_") or k.endswith("_DIR")),
        ]
        allowed = (str(self.volumes_root), str(REPO))
        return [v for v in values if v.startswith("/") and not v.startswith(allowed)]

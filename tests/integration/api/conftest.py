"""One fleet per module, written through the shard processor into moto, read back by the API."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from consumer.settings import Settings
from devstack.provision import provision
from tests.integration.api.fleet import Meter, write
from tests.integration.conftest import environment


@pytest.fixture(scope="module")
def stored_fleet(aws_env: dict[str, str]) -> Iterator[Callable[[list[Meter], int], dict[str, str]]]:
    """``store(meters, received_ms)``: fresh tables holding those meters; the env that names them."""
    made: list[dict[str, str]] = []

    def store(meters: list[Meter], received_ms: int) -> dict[str, str]:
        suffix = uuid.uuid4().hex[:8]
        env = {
            **aws_env,
            "WATTSTREAM_STREAM_NAME": f"readings-{suffix}",
            "WATTSTREAM_AGGREGATES_TABLE": f"aggregates-{suffix}",
            "WATTSTREAM_STATE_TABLE": f"state-{suffix}",
            "WATTSTREAM_RAW_BUCKET": f"raw-{suffix}",
            "WATTSTREAM_SHARD_COUNT": "1",
        }
        with environment(env):
            settings = Settings()
            provision(settings)
            write(meters, settings, received_ms=received_ms)
        made.append(env)
        return env

    yield store

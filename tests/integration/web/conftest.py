"""The page tests store their fleet as the API tests do."""

from tests.integration.api.conftest import stored_fleet  # noqa: F401 - a fixture, found by its name

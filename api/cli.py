"""``wattstream serve``: the API and the fleet page under uvicorn."""

from __future__ import annotations

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every one).")
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    envvar="WATTSTREAM_API_PORT",
    help="TCP port (or WATTSTREAM_API_PORT).",
)
def serve(host: str, port: int) -> None:
    """Serve the read-only HTTP API (JSON or CSV) and the fleet page.

    Reads the aggregates table with GetItem, Query and BatchGetItem only; never writes.
    OpenAPI docs at /docs. WATTSTREAM_API_TOKEN asks every API request for a bearer token;
    WATTSTREAM_API_CORS_ORIGINS lets pages of other origins call it.

    \b
    Examples:
      wattstream serve                          # http://127.0.0.1:8080/
      wattstream serve --host 0.0.0.0 --port 8000
      curl -s 'http://127.0.0.1:8080/devices/box-0001/energy?every=1h&format=csv'
    """
    import uvicorn

    from api.app import create_app

    click.echo(f"wattstream serve on http://{host}:{port}/ (API docs at /docs)", err=True)
    uvicorn.run(create_app(), host=host, port=port, log_level="warning", access_log=False)

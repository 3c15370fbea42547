"""``wattstream serve``: a read-only HTTP API over the stored energy, and the fleet page.

It reads what the consumer stores through the read functions (``sinks.read``), the device
registry (``sinks.registry``) and the live view (``sinks.live``), with GetItem, Query and
BatchGetItem only: it never writes a byte. ``api.app.create_app`` builds the application;
``api.cli.serve`` runs it under uvicorn.
"""

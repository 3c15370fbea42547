"""A bounded HTTP GET for sources that poll a device on the LAN (Shelly, Tasmota).

One request per read, ``timeout_s`` for the whole answer, at most ``max_bytes`` read (the rest
is never fetched), credentials from the URL (``http://user:password@host``, sent as HTTP Basic:
Shelly Gen1 and Tasmota's web password). Failures are ``MeterError``s with the box's reasons:
``timeout``, ``connection`` (refused, unreachable, DNS), ``protocol`` (an HTTP error status,
e.g. 401 when the device wants a password), ``garbage`` (too large; see ``document``).
"""

from __future__ import annotations

import base64
import socket
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from device.meters import MeterError
from device.sources.document import MAX_DOCUMENT_BYTES, decode_json


def _split_credentials(url: str) -> tuple[str, str | None]:
    """The URL without user:password, and the Basic authorization header for them."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, None
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    token = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")), "Basic " + base64.b64encode(token).decode()


def get_json(url: str, *, timeout_s: float, max_bytes: int = MAX_DOCUMENT_BYTES) -> dict[str, Any]:
    """The JSON object at ``url`` (see module docstring)."""
    bare, authorization = _split_credentials(url)
    if urlsplit(bare).scheme not in ("http", "https"):
        raise MeterError("connection", f"{bare}: not an http(s) URL")
    request = urllib.request.Request(bare, headers={"Accept": "application/json"})  # noqa: S310 - scheme checked above
    if authorization:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - scheme checked above
            body = response.read(max_bytes + 1)
    except urllib.error.HTTPError as exc:
        raise MeterError("protocol", f"{bare}: HTTP {exc.code}") from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError | socket.timeout):
            raise MeterError("timeout", f"{bare}: no answer within {timeout_s} s") from exc
        raise MeterError("connection", f"{bare}: {exc.reason}") from exc
    except TimeoutError as exc:
        raise MeterError("timeout", f"{bare}: no (complete) answer within {timeout_s} s") from exc
    except (ConnectionError, OSError) as exc:
        raise MeterError("connection", f"{bare}: {exc}") from exc
    return decode_json(body, max_bytes=max_bytes, what=bare)

"""The API's errors: each is a client's mistake with the HTTP status that says so.

    WattstreamError (readings.errors)
     +-- ApiError              status 400: a request that cannot be answered as asked
          +-- NotFoundError    status 404: no such device (neither registered nor in the live view)

``api.app`` turns every one into ``{"detail": <message>}`` with its status; a store failure
(``SinkError``) is not one of them and stays a 500.
"""

from __future__ import annotations

from readings.errors import WattstreamError


class ApiError(WattstreamError):
    status = 400


class NotFoundError(ApiError):
    status = 404

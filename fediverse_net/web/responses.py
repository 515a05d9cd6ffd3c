"""Responses with the exact media types federation needs, serialised with orjson."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from fediverse_net.activitypub.vocab import ACTIVITY_CONTENT_TYPE, JRD_CONTENT_TYPE

CORS = {"Access-Control-Allow-Origin": "*"}


def dumps(data: Any) -> bytes:
    return orjson.dumps(data)


class ActivityJSONResponse(Response):
    """`application/activity+json; charset=utf-8`, `Vary: Accept` (protocol §1.5, §2.1)."""

    media_type = f"{ACTIVITY_CONTENT_TYPE}; charset=utf-8"

    def __init__(self, content: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> None:
        merged = {"Vary": "Accept", **CORS, **(headers or {})}
        super().__init__(dumps(content), status_code=status_code, headers=merged)


class PreparedResponse(Response):
    """An already-encoded body sent with a prepared header list (cached documents, B1/B2).

    Skips Starlette's per-request header encoding; `headers` are lower-case latin-1 pairs
    without content-length, which is added here.
    """

    def __init__(self, body: bytes, headers: list[tuple[bytes, bytes]], status_code: int = 200) -> None:
        self.status_code = status_code
        self.background = None
        self.body = body
        # A new list each time: middlewares append to the one they are sent.
        self.raw_headers = [*headers, (b"content-length", str(len(body)).encode("latin-1"))]


def raw_headers(media_type: str, headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """`headers` plus content-type as the raw pairs `PreparedResponse` takes."""
    pairs = {**headers, "Content-Type": media_type}
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in pairs.items()]


ACTIVITY_HEADERS = raw_headers(ActivityJSONResponse.media_type, {"Vary": "Accept", **CORS})


class JSONResponse(Response):
    media_type = "application/json"

    def __init__(
        self,
        content: Any,
        status_code: int = 200,
        headers: dict[str, str] | None = None,
        media_type: str | None = None,
    ) -> None:
        super().__init__(dumps(content), status_code=status_code, headers=headers, media_type=media_type)


class JRDResponse(JSONResponse):
    media_type = f"{JRD_CONTENT_TYPE}; charset=utf-8"


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The `{"error": …}` body Mastodon sends with 4xx answers."""
    return JSONResponse({"error": message}, status_code=status, headers=headers)

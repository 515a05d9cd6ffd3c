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

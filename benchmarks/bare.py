"""The baseline servers of B1–B3: bare Starlette + orjson endpoints, under the same uvicorn.

`python -m benchmarks.bare SPEC.json PORT`. SPEC holds the documents our server returned (so the
sizes match) and the remote actors' public keys for the verify-only inbox. No database, no
middleware, no logging: what a minimal server on this stack costs.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fediverse_net.activitypub.keys import load_public_key
from fediverse_net.activitypub.signatures import PublicKeyInfo, RequestParts, verify_request


def build_app(spec: dict) -> Starlette:
    actor = spec["actor"]
    webfinger_doc = spec["webfinger"]
    nodeinfo_doc = spec["nodeinfo"]
    origin = spec["origin"]
    keys = {
        key_id: PublicKeyInfo(key_id=key_id, owner=owner, public_key=load_public_key(pem))
        for key_id, (owner, pem) in spec["keys"].items()
    }

    async def lookup(key_id: str, refresh: bool) -> PublicKeyInfo:
        return keys[key_id]

    async def actor_get(request: Request) -> Response:
        return Response(orjson.dumps(actor), media_type="application/activity+json; charset=utf-8")

    async def webfinger(request: Request) -> Response:
        return Response(orjson.dumps(webfinger_doc), media_type="application/jrd+json; charset=utf-8")

    async def nodeinfo(request: Request) -> Response:
        return Response(orjson.dumps(nodeinfo_doc), media_type="application/json")

    async def inbox(request: Request) -> Response:
        body = await request.body()
        headers: dict[str, str] = {}
        for raw_name, raw_value in request.scope["headers"]:
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1").strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        target = request.scope["raw_path"].decode("latin-1")
        parts = RequestParts(method="POST", target=target, headers=headers, body=body, origin=origin)
        await verify_request(parts, key_lookup=lookup, now=datetime.now(UTC))
        return Response(status_code=202)

    return Starlette(
        routes=[
            Route("/users/{handle}", actor_get),
            Route("/.well-known/webfinger", webfinger),
            Route("/nodeinfo/{version}", nodeinfo),
            Route("/inbox", inbox, methods=["POST"]),
        ]
    )


if __name__ == "__main__":
    config = json.loads(Path(sys.argv[1]).read_text())
    uvicorn.run(
        build_app(config),
        host="127.0.0.1",
        port=int(sys.argv[2]),
        log_level="warning",
        access_log=False,
        server_header=False,
    )

"""Inbox POSTs take a fast path past the session, exception layer and router (benchmark B3).

The answers must be exactly those of the full stack: the same app without `InboxFastPath` is
the reference. Also the fast log line and the parsing shortcuts used on that path.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from starlette.applications import Starlette

from fediverse_net import logs
from fediverse_net.activitypub.errors import ProtocolError
from fediverse_net.activitypub.parse import MAX_DEPTH, loads_object, origin_of, same_origin
from fediverse_net.app import create_app
from fediverse_net.config import Settings
from fediverse_net.db.models import InboxItem
from fediverse_net.web.middleware import InboxFastPath
from tests.federation.test_inbox import create_of

pytestmark = pytest.mark.anyio
AP = {"content-type": "application/activity+json"}


@pytest.fixture
async def reference(
    db: None, settings: Settings, fake_transport: httpx.AsyncBaseTransport
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the same app built without the fast path (every POST through the router)."""
    app: Starlette = create_app(settings, manage_db=False, run_workers=False, transport=fake_transport)
    app.user_middleware = [m for m in app.user_middleware if m.cls is not InboxFastPath]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=settings.origin) as http:
            yield http


def _answer(response: httpx.Response) -> tuple[int, bytes, list[tuple[str, str]]]:
    headers = sorted((k, v) for k, v in response.headers.items() if k != "date")
    return response.status_code, response.content, headers


@pytest.mark.parametrize(
    ("method", "path", "headers", "body"),
    [
        ("POST", "/inbox", AP, b'{"type": "Create"}'),  # no usable id: 400
        ("POST", "/inbox", AP, b"not json"),  # 400
        ("POST", "/inbox", {"content-type": "text/plain"}, b"{}"),  # 415
        ("POST", "/inbox", {**AP, "content-length": "99999999"}, b"{}"),  # 413 from the header
        ("POST", "/inbox", AP, b"[" * 5_000_000),  # 413 from the body
        ("POST", "/users/nobody/inbox", AP, b"{}"),  # 404
        ("POST", "/groups/nobody/inbox", AP, b"{}"),  # 404
        ("POST", "/users/alice/inbox", {"content-type": "text/plain"}, b"{}"),  # 415
        ("GET", "/inbox", {}, b""),  # not a POST: the router's 405
        ("POST", "/inbox/", AP, b"{}"),  # another path: the router decides
        ("POST", "/users/alice/outbox/inbox", AP, b"{}"),  # not an inbox route
    ],
)
async def test_answers_are_those_of_the_router(client, reference, alice, method, path, headers, body):
    ours = await client.request(method, path, headers=headers, content=body)
    full = await reference.request(method, path, headers=headers, content=body)
    assert _answer(ours) == _answer(full)
    assert ours.headers["x-content-type-options"] == "nosniff"  # AccessLogAndHeaders still applies


async def test_unsigned_and_signed_posts_match_the_router(client, reference, fediverse, alice):
    bob = fediverse.add_actor("bob")
    unsigned = json.dumps(create_of(fediverse, bob)).encode()
    ours = await client.post("/inbox", content=unsigned, headers=AP)
    full = await reference.post("/inbox", content=unsigned, headers=AP)
    assert ours.status_code == 401
    assert _answer(ours) == _answer(full)

    mine, theirs = create_of(fediverse, bob), create_of(fediverse, bob)
    ours = await fediverse.post_signed(client, "/users/alice/inbox", mine, as_actor=bob)
    full = await fediverse.post_signed(reference, "/users/alice/inbox", theirs, as_actor=bob)
    assert (ours.status_code, ours.content) == (full.status_code, full.content) == (202, b"")
    stored = await InboxItem.get(activity_id=mine["id"])
    assert stored.recipient == alice.ap_id  # path_params reached the handler
    assert await InboxItem.filter(activity_id=theirs["id"]).exists()


async def test_fast_path_sits_inside_the_access_log(app):
    fast = next(m for m in app.user_middleware if m.cls is InboxFastPath)
    assert fast is app.user_middleware[1]  # right inside AccessLogAndHeaders


def test_event_line_is_the_formatter_line():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    saved = root.handlers[:], root.level, logs._access.handler
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logs._access.handler = handler
    try:
        logger = logging.getLogger("fediverse_net.federation")
        fields = {"activity": "https://a.example/1", "type": "Create", "n": 3, "none": None}
        logs.event(logger, "inbox accepted", **fields)
        logs._access.flush()
        fast = stream.getvalue()
        record = logger.makeRecord(logger.name, logging.INFO, "f", 1, "inbox accepted", (), None)
        record.fields = fields
        slow = handler.format(record) + "\n"
    finally:
        root.handlers[:], level, logs._access.handler = saved[0], saved[1], saved[2]
        root.setLevel(level)
    assert fast.endswith("\n") and fast.count("\n") == 1
    fast_entry, slow_entry = orjson.loads(fast), orjson.loads(slow)
    assert list(fast_entry) == list(slow_entry)  # same keys in the same order
    fast_entry.pop("ts"), slow_entry.pop("ts")
    assert fast_entry == slow_entry


def _reference_same_origin(a: str, b: str) -> bool:
    try:
        return origin_of(a) == origin_of(b)
    except ProtocolError:
        return False


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://a.example/notes/1", "https://a.example/users/u"),
        ("https://a.example:443/notes/1", "https://a.example/users/u"),
        ("http://a.example:9/x", "http://a.example:9/users/u"),
        ("http://a.example:9/x", "http://a.example:10/users/u"),
        ("https://a.example.evil/x", "https://a.example/users/u"),
        ("https://A.example/x", "https://a.example/users/u"),
        ("https://a.example@evil.example/x", "https://a.example/users/u"),
        ("https://a.example/x", "http://a.example/users/u"),
        ("ftp://a.example/x", "ftp://a.example/users/u"),
        ("https://a.example/\tx", "https://a.example/users/u"),
    ],
)
def test_same_origin_shortcut_agrees_with_the_definition(a, b):
    assert same_origin(a, b) == _reference_same_origin(a, b)
    assert same_origin(b, a) == _reference_same_origin(b, a)


def test_depth_limit_still_holds_with_the_bracket_count():
    deep = b'{"a":' * MAX_DEPTH + b"1" + b"}" * MAX_DEPTH
    assert loads_object(deep)
    too_deep = b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1)
    with pytest.raises(ProtocolError):
        loads_object(too_deep)
    # Brackets inside strings only make the count larger: the document is then walked.
    assert loads_object(b'{"a": "' + b"[" * 500 + b'"}') == {"a": "[" * 500}

"""Groups: a local organizer (`alice`), group factory, FakeFediverse remotes, hand-cranked workers."""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

import httpx
import pytest

from fediverse_net.db.models import Actor, Delivery, OutgoingActivity
from fediverse_net.services.groups.core import GroupInput, create_group
from fediverse_net.services.members import NewMember, create_member
from fediverse_net.services.remote_actors import resolve_actor
from fediverse_net.workers.runner import WorkerRunner
from tests.fakes.fediverse import FakeFediverse, RemoteActor

PASSWORD = "correct horse"
AS = "https://www.w3.org/ns/activitystreams"
PUBLIC = f"{AS}#Public"


@pytest.fixture
def fediverse() -> FakeFediverse:
    return FakeFediverse()


@pytest.fixture
def fake_transport(fediverse):
    return fediverse.transport


@pytest.fixture
def run_workers(app):
    async def run() -> int:
        return await WorkerRunner(app.state.deps).run_pending()

    return run


@pytest.fixture
def deps(app):
    return app.state.deps


async def member(settings, handle: str, **extra: Any) -> Actor:
    account = await create_member(settings, NewMember(handle=handle, password=PASSWORD, **extra))
    await account.fetch_related("actor")
    return account.actor


@pytest.fixture
async def alice(app, settings) -> Actor:
    return await member(settings, "alice", display_name="Alice")


@pytest.fixture
def make_group(settings, alice):
    async def make(handle: str = "hikers", owner: Actor | None = None, **form: Any) -> Actor:
        values = {"name": "Hikers of Example Valley", **form}
        return await create_group(settings, handle, owner or alice, GroupInput(**values))

    return make


@pytest.fixture
async def hikers(make_group) -> Actor:
    return await make_group()


async def stored(app, remote: RemoteActor) -> Actor:
    return await resolve_actor(app.state.deps, remote.id)


def follow_of(fediverse: FakeFediverse, actor: RemoteActor, target: str) -> dict[str, Any]:
    return {
        "@context": AS,
        "id": fediverse.new_id(actor, "follows"),
        "type": "Follow",
        "actor": actor.id,
        "object": target,
    }


def join_of(fediverse: FakeFediverse, actor: RemoteActor, target: str, **extra: Any) -> dict[str, Any]:
    return {
        "@context": AS,
        "id": fediverse.new_id(actor, "join"),
        "type": "Join",
        "actor": actor.id,
        "object": target,
        "to": [target],
        **extra,
    }


def create_of(
    fediverse: FakeFediverse, actor: RemoteActor, *, to: list[str], cc: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    note_id = fediverse.new_id(actor, "statuses")
    note = {
        "id": note_id,
        "type": "Note",
        "attributedTo": actor.id,
        "content": "<p>Ridge walk on Saturday</p><p>Who is in?</p>",
        "published": "2026-11-01T10:00:00Z",
        "to": to,
        "cc": cc or [],
        **extra,
    }
    return {
        "@context": AS,
        "id": f"{note_id}/activity",
        "type": "Create",
        "actor": actor.id,
        "to": note["to"],
        "cc": note["cc"],
        "object": note,
    }


async def queued(kind: str | None = None) -> list[tuple[dict[str, Any], list[str]]]:
    """Outgoing activities (of `kind`) with the inboxes they are queued for."""
    result = []
    query = OutgoingActivity.all() if kind is None else OutgoingActivity.filter(type=kind)
    for outgoing in await query.order_by("id"):
        inboxes = await Delivery.filter(activity_id=outgoing.id).values_list("inbox_url", flat=True)
        result.append((json.loads(outgoing.body), sorted(str(url) for url in inboxes)))
    return result


TOKEN_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


async def post_form(http: httpx.AsyncClient, path: str, data: dict, token_page: str = "/"):
    """Submit a form as a browser does: the CSRF token from `token_page`, then the POST."""
    page = await http.get(token_page)
    token = TOKEN_RE.search(page.text).group(1)
    return await http.post(path, data={"csrf_token": token, **data})


@pytest.fixture
async def browsers(app, settings):
    """Factory: `await browsers("alice")` is a logged-in client with its own cookies (None: anonymous)."""
    async with contextlib.AsyncExitStack() as stack:

        async def open_as(handle: str | None = None) -> httpx.AsyncClient:
            http = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=settings.origin)
            )
            if handle is not None:
                response = await post_form(http, "/login", {"handle": handle, "password": PASSWORD}, "/login")
                assert response.status_code == 303, response.text
            return http

        yield open_as

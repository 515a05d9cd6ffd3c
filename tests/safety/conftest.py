"""Fixtures for the safety suite: a fake fediverse with WebFinger, members, logged-in browsers."""

from __future__ import annotations

import contextlib

import httpx
import pytest

from fediverse_net.workers.runner import WorkerRunner
from tests.web.test_social import PASSWORD, JrdFediverse, member, post_form


@pytest.fixture
def fediverse() -> JrdFediverse:
    return JrdFediverse()


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


@pytest.fixture
async def alice(app, settings):
    return await member(settings, "alice", display_name="Alice")


@pytest.fixture
async def admin(app, settings):
    return await member(settings, "root_admin", display_name="Admin", is_admin=True)


@pytest.fixture
def bob(fediverse):
    remote = fediverse.add_actor("bob", "remote.example")
    fediverse.add_webfinger(remote)
    return remote


@pytest.fixture
def mallory(fediverse):
    remote = fediverse.add_actor("mallory", "evil.example", slot=1)
    fediverse.add_webfinger(remote)
    return remote


@pytest.fixture
async def browsers(app, settings):
    """`await open_as("alice")`: a logged-in browser with its own cookies."""
    async with contextlib.AsyncExitStack() as stack:

        async def open_as(handle: str | None = None) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=app)
            http = await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url=settings.origin)
            )
            if handle is not None:
                response = await post_form(
                    http, "/login", {"handle": handle, "password": PASSWORD}, token_page="/login"
                )
                assert response.status_code == 303, response.text
            return http

        yield open_as

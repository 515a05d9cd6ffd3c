"""The cached read path (benchmarks B1, B2): what caching must never change.

Actor documents, WebFinger and NodeInfo answers are cached as encoded bytes; these tests pin
that a change to a member (key rotation, suspension, deletion) is never hidden by the cache, even
by a GET racing the change, and that every cached answer still gets the security headers and
its access log line.
"""

from __future__ import annotations

import asyncio
import contextvars
import io
import logging
from collections.abc import Iterator

import orjson
import pytest

from fediverse_net import logs
from fediverse_net.db.models import Account, PublicKey
from fediverse_net.services import actor_documents, actor_lifecycle, instance_admin
from fediverse_net.services.members import NewMember, create_member
from tests.conftest import IS_POSTGRES

pytestmark = pytest.mark.anyio
AP = {"Accept": "application/activity+json"}


@pytest.fixture
async def alice(app, settings):
    account = await create_member(
        settings, NewMember(handle="alice", password="correct horse", display_name="Alice")
    )
    await account.fetch_related("actor")
    return account.actor


async def _served_pem(client) -> str:
    response = await client.get("/users/alice", headers=AP)
    assert response.status_code == 200
    pem: str = response.json()["publicKey"]["publicKeyPem"]
    return pem


async def test_get_that_read_the_old_key_before_a_rotation_cannot_cache_it(app, client, alice, monkeypatch):
    """A GET reads the document, the key is rotated and committed, then the GET stores its copy."""
    deps = app.state.deps
    old_pem = (await PublicKey.get(key_id=f"{alice.ap_id}#main-key")).pem
    read_done, release = asyncio.Event(), asyncio.Event()
    real_document_for = actor_documents.document_for

    async def slow_document_for(actor, urls):
        document = await real_document_for(actor, urls)  # the old key, read from the database
        read_done.set()
        await release.wait()  # the rotation runs and commits while this GET is in flight
        return document

    monkeypatch.setattr(actor_documents, "document_for", slow_document_for)
    racing_get = asyncio.create_task(actor_documents.member_document(deps, "alice"))
    await read_done.wait()
    monkeypatch.setattr(actor_documents, "document_for", real_document_for)
    await actor_lifecycle.rotate_key(deps, alice)
    release.set()
    served = await racing_get
    # The racing GET itself answers with what it read; it must not have been kept.
    assert served.document["publicKey"]["publicKeyPem"] == old_pem
    new_pem = (await PublicKey.get(key_id=f"{alice.ap_id}#main-key")).pem
    assert new_pem != old_pem
    assert await _served_pem(client) == new_pem
    assert await _served_pem(client) == new_pem  # and the cached copy is the new one


async def test_get_during_the_rotation_transaction_is_forgotten_at_commit(app, client, alice, monkeypatch):
    """Another connection still sees the old key until the commit: what it caches is dropped then."""
    deps = app.state.deps
    old_pem = await _served_pem(client)
    stale = await actor_documents.member_document(deps, "alice")
    real_record = actor_lifecycle.record_outgoing

    async def record_then_race(*args, **kwargs):
        await real_record(*args, **kwargs)
        # Inside the transaction, after the first forget: a GET on another connection reads the
        # committed (old) rows and stores them, as it would on PostgreSQL.
        cache = deps.cache(actor_documents.DOCUMENT_CACHE, actor_documents.DOCUMENT_TTL)
        cache.put("alice", stale, generation=cache.generation)
        assert cache.get("alice") is stale

    monkeypatch.setattr(actor_lifecycle, "record_outgoing", record_then_race)
    await actor_lifecycle.rotate_key(deps, alice)
    assert await _served_pem(client) != old_pem


@pytest.mark.skipif(not IS_POSTGRES, reason="SQLite has one connection: readers wait for the commit")
async def test_real_get_on_another_connection_during_the_rotation_is_forgotten_at_commit(
    app, client, alice, monkeypatch
):
    """PostgreSQL: a GET on a pooled connection inside the rotation's transaction reads the old key."""
    deps = app.state.deps
    old_pem = await _served_pem(client)
    deps.cache(actor_documents.DOCUMENT_CACHE, actor_documents.DOCUMENT_TTL).clear()
    real_record = actor_lifecycle.record_outgoing
    raced: list[str] = []

    async def record_then_get(*args, **kwargs):
        await real_record(*args, **kwargs)
        # A fresh context: the GET does not see this task's transaction, as a request would not.
        get = asyncio.create_task(
            actor_documents.member_document(deps, "alice"), context=contextvars.Context()
        )
        raced.append((await get).document["publicKey"]["publicKeyPem"])

    monkeypatch.setattr(actor_lifecycle, "record_outgoing", record_then_get)
    await actor_lifecycle.rotate_key(deps, alice)
    assert raced == [old_pem]  # the race happened: the old key was read (and cached) mid-transaction
    assert await _served_pem(client) != old_pem


async def test_suspension_by_another_service_forgets_the_document_after_its_commit(
    app, client, alice, monkeypatch
):
    """`announce_update` inside a caller's transaction forgets again once that transaction commits."""
    deps = app.state.deps
    assert "suspended" not in (await client.get("/users/alice", headers=AP)).json()
    stale = await actor_documents.member_document(deps, "alice")
    real_record = actor_lifecycle.record_outgoing
    seen_in_transaction: list[bool] = []

    async def record_then_race(*args, **kwargs):
        await real_record(*args, **kwargs)
        cache = deps.cache(actor_documents.DOCUMENT_CACHE, actor_documents.DOCUMENT_TTL)
        cache.put("alice", stale, generation=cache.generation)
        seen_in_transaction.append(cache.get("alice") is stale)

    monkeypatch.setattr(actor_lifecycle, "record_outgoing", record_then_race)
    await instance_admin.suspend_member(deps, None, "alice")
    assert seen_in_transaction == [True]  # the stale copy was in the cache before the commit
    assert (await client.get("/users/alice", headers=AP)).json()["suspended"] is True


async def test_after_commit_callbacks_do_not_run_on_rollback(app):
    from tortoise.transactions import in_transaction

    ran: list[str] = []
    with pytest.raises(RuntimeError):
        async with in_transaction():
            actor_lifecycle.after_commit(lambda: ran.append("rolled back"))
            raise RuntimeError("abort")
    async with in_transaction():
        actor_lifecycle.after_commit(lambda: ran.append("committed"))
        assert ran == []
    assert ran == ["committed"]
    actor_lifecycle.after_commit(lambda: ran.append("no transaction"))
    assert ran == ["committed", "no transaction"]


async def test_deleted_member_is_gone_at_once_from_actor_url_and_webfinger(app, client, alice):
    wf = "/.well-known/webfinger?resource=acct:alice@fedi.test"
    assert (await client.get("/users/alice", headers=AP)).status_code == 200
    assert (await client.get(wf)).status_code == 200  # both answers are now cached
    account = await Account.get(actor_id=alice.id)
    await actor_lifecycle.delete_member(app.state.deps, account)
    assert (await client.get("/users/alice", headers=AP)).status_code == 410
    response = await client.get(wf)
    assert response.status_code == 410
    assert response.headers["cache-control"] == "max-age=180, public"


async def test_webfinger_may_be_kept_by_shared_caches_for_minutes_not_days(client, alice):
    wf = "/.well-known/webfinger?resource=acct:alice@fedi.test"
    first, second = await client.get(wf), await client.get(wf)  # a miss, then a cache hit
    for response in (first, second):
        assert response.status_code == 200
        assert response.headers["cache-control"] == "max-age=300, public"
        assert response.headers["content-type"] == "application/jrd+json; charset=utf-8"
        assert response.headers["access-control-allow-origin"] == "*"
    assert first.content == second.content
    assert int(first.headers["content-length"]) == len(first.content)


async def test_cached_answers_keep_security_headers_and_exact_headers(client, alice):
    paths = ["/users/alice", "/.well-known/webfinger?resource=acct:alice@fedi.test", "/nodeinfo/2.1"]
    for path in paths:
        for _ in range(2):  # built, then served from the cache
            response = await client.get(path, headers=AP)
            assert response.status_code == 200, path
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["referrer-policy"] == "same-origin"
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
            assert int(response.headers["content-length"]) == len(response.content)
            assert "set-cookie" not in response.headers
    actor = await client.get("/users/alice", headers=AP)
    assert actor.headers["content-type"] == "application/activity+json; charset=utf-8"
    assert actor.headers["vary"] == "Accept"
    nodeinfo = await client.get("/nodeinfo/2.0")
    assert nodeinfo.json()["version"] == "2.0"
    assert nodeinfo.headers["content-type"].endswith('schema/2.0#"')
    assert nodeinfo.headers["cache-control"] == "max-age=1800, public"


@pytest.fixture
def captured_log() -> Iterator[io.StringIO]:
    """`logs.configure` writing to a buffer, as `serve` writes to stderr."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    stream = io.StringIO()
    logs.configure("INFO")
    root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
    try:
        yield stream
    finally:
        logs.configure("INFO")
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        logs._access.handler = None


async def test_every_request_writes_one_json_access_line(client, alice, captured_log):
    for _ in range(3):
        assert (await client.get("/users/alice", headers=AP)).status_code == 200
    assert (await client.get("/users/nobody", headers=AP)).status_code == 404
    await asyncio.sleep(0)  # lines are written once per event loop turn
    lines = [orjson.loads(line) for line in captured_log.getvalue().splitlines()]
    requests = [line for line in lines if line["msg"] == "request"]
    expected = [("/users/alice", 200)] * 3 + [("/users/nobody", 404)]
    assert [(r["path"], r["status"]) for r in requests] == expected
    for entry in requests:
        assert entry["level"] == "info" and entry["logger"] == "fediverse_net.http"
        assert entry["method"] == "GET" and isinstance(entry["ms"], float)
        assert len(entry["ts"]) == len("2026-01-01T00:00:00")


async def test_session_cookie_still_set_and_read_without_the_parent_middleware_path(client, alice):
    """Pages that start a session still get their cookie; the cookie is honoured afterwards."""
    login = await client.get("/login")
    assert login.status_code == 200
    assert "fedinet_session=" in login.headers.get("set-cookie", "")
    assert "httponly" in login.headers["set-cookie"].lower()
    assert "Cookie" in login.headers.get("vary", "")
    # The same session (CSRF token) is read back on the next request.
    again = await client.get("/login")
    assert "set-cookie" not in again.headers


async def test_browsers_still_get_the_profile_redirect_once_the_document_is_cached(client, alice):
    assert (await client.get("/users/alice", headers=AP)).status_code == 200  # cached now
    for accept in ("text/html", None):
        headers = {"Accept": accept} if accept else {}
        response = await client.get("/users/ALICE", headers=headers)
        assert response.status_code == 302
        assert response.headers["location"] == "https://fedi.test/@alice"
        assert response.headers["vary"] == "Accept"
    upper = await client.get("/users/ALICE", headers=AP)
    assert upper.status_code == 200 and upper.json()["id"] == "https://fedi.test/users/alice"

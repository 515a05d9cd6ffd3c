"""The social pages: compose and reply, threads, delete, find and follow, followers, delete account.

Remote servers are a FakeFediverse (httpx MockTransport); the inbox and delivery workers are
cranked by hand with `WorkerRunner.run_pending()`.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from fediverse_net.db.models import Account, Actor, Delivery, Follow, Note, OutgoingActivity, Tombstone
from fediverse_net.services.members import NewMember, create_member
from fediverse_net.services.remote_actors import resolve_actor
from fediverse_net.workers.runner import WorkerRunner
from tests.fakes.fediverse import FakeFediverse, RemoteActor

pytestmark = pytest.mark.anyio
AP = "application/activity+json"
BROWSER = "text/html,application/xhtml+xml,*/*;q=0.8"
TOKEN_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
PASSWORD = "correct horse"


# --- a fediverse that answers WebFinger with JRD --------------------------------------------------


@dataclass
class JrdFediverse(FakeFediverse):
    """FakeFediverse plus WebFinger answers served as `application/jrd+json`, as Mastodon does."""

    jrds: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add_webfinger(self, actor: RemoteActor) -> None:
        document = {
            "subject": f"acct:{actor.username}@{actor.domain}",
            "links": [{"rel": "self", "type": AP, "href": actor.id}],
        }
        # Tests allow private addresses, which also lets the client use plain http for WebFinger.
        for scheme in ("http", "https"):
            query = f"resource=acct:{actor.username}@{actor.domain}"
            self.jrds[f"{scheme}://{actor.domain}/.well-known/webfinger?{query}"] = document

    def handle(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        if request.method == "GET" and url in self.jrds:
            self.fetched.append(url)
            headers = {"content-type": "application/jrd+json; charset=utf-8"}
            return httpx.Response(200, content=json.dumps(self.jrds[url]).encode(), headers=headers)
        return super().handle(request)

    def types_to(self, inbox: str) -> list[str]:
        return [activity["type"] for activity in self.received_json(inbox)]


@pytest.fixture
def fediverse() -> JrdFediverse:
    return JrdFediverse()


@pytest.fixture
def fake_transport(fediverse):
    return fediverse.transport


@pytest.fixture
def bob(fediverse) -> RemoteActor:
    remote = fediverse.add_actor("bob", "remote.example")
    fediverse.add_webfinger(remote)
    return remote


@pytest.fixture
def run_workers(app):
    async def run() -> int:
        return await WorkerRunner(app.state.deps).run_pending()

    return run


# --- members and their browsers ---------------------------------------------------------------------


async def member(settings, handle: str, **extra) -> Actor:
    account = await create_member(settings, NewMember(handle=handle, password=PASSWORD, **extra))
    await account.fetch_related("actor")
    return account.actor


async def token_from(client: httpx.AsyncClient, path: str = "/login") -> str:
    response = await client.get(path)
    match = TOKEN_RE.search(response.text)
    assert match, (path, response.status_code, response.text[:500])
    return match.group(1)


async def post_form(client: httpx.AsyncClient, path: str, data: dict[str, Any], *, token_page: str = "/"):
    token = await token_from(client, token_page)
    return await client.post(path, data={"csrf_token": token, **data})


@pytest.fixture
async def browsers(app, settings):
    """`await open_as("carol")`: a new logged-in browser (its own cookies) for a member."""
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


@pytest.fixture
async def alice(app, settings) -> Actor:
    return await member(settings, "alice", display_name="Alice")


@pytest.fixture
async def as_alice(alice, browsers) -> httpx.AsyncClient:
    return await browsers("alice")


async def stored(app, remote: RemoteActor) -> Actor:
    return await resolve_actor(app.state.deps, remote.id)


async def remote_follower(app, remote: RemoteActor, followee: Actor) -> Actor:
    actor = await stored(app, remote)
    await Follow.create(ap_id=f"{remote.id}/follows/1", follower=actor, followee=followee, state="accepted")
    return actor


async def publish(client, content: str, visibility: str = "public", **extra) -> httpx.Response:
    data = {"content": content, "visibility": visibility, "back": "/", **extra}
    return await post_form(client, "/notes", data)


def token_of(note: Note) -> str:
    return note.ap_id.rsplit("/", 1)[-1]


def page_of(note: Note, handle: str = "alice") -> str:
    return f"/@{handle}/notes/{token_of(note)}"


def active_markup(html: str) -> list[str]:
    """Tags or attributes a browser would act on."""
    found = re.findall(r"<(?:script|iframe|svg|style|object|embed)\b", html, re.I)
    found += re.findall(r"<[^>]*\son\w+\s*=", html, re.I)
    found += re.findall(r"<[^>]*\s(?:href|src)\s*=\s*[\"']?\s*javascript:", html, re.I)
    return found


async def queued(kind: str) -> list[tuple[dict[str, Any], list[str]]]:
    """Outgoing activities of `kind` with the inboxes they are queued for."""
    result = []
    for outgoing in await OutgoingActivity.filter(type=kind).order_by("id"):
        inboxes = await Delivery.filter(activity_id=outgoing.id).values_list("inbox_url", flat=True)
        result.append((json.loads(outgoing.body), sorted(str(url) for url in inboxes)))
    return result


# --- compose ----------------------------------------------------------------------------------------


async def test_compose_publishes_a_note_and_queues_a_create_for_followers(
    app, as_alice, alice, bob, fediverse, run_workers
):
    await remote_follower(app, bob, alice)
    home = await as_alice.get("/")
    assert 'action="/notes"' in home.text and '<option value="followers"' in home.text
    response = await publish(as_alice, "Hello **board games** people")
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    note = await Note.get(author=alice)
    assert note.local and note.visibility == "public"
    assert "<strong>board games</strong>" in note.content
    ((create, inboxes),) = await queued("Create")
    assert create["object"]["id"] == note.ap_id
    assert inboxes == ["https://remote.example/inbox"]
    await run_workers()
    assert "Create" in fediverse.types_to("https://remote.example/inbox")
    page = await as_alice.get("/")
    assert "Your post is published." in page.text
    assert "<strong>board games</strong>" in page.text


async def test_compose_errors_stay_on_the_page_with_the_draft(as_alice, alice):
    empty = await publish(as_alice, "   ")
    assert empty.status_code == 400
    assert "Write something first." in empty.text
    too_long = await publish(as_alice, "x" * 5001 + " my draft")
    assert too_long.status_code == 400
    assert "at most 5000 characters" in too_long.text
    assert "my draft</textarea>" in too_long.text
    odd = await publish(as_alice, "hello", visibility="everyone")
    assert odd.status_code == 400
    assert not await Note.exists()


async def test_followers_only_post_is_addressed_to_followers(as_alice, alice):
    assert (await publish(as_alice, "just for you", visibility="followers")).status_code == 303
    note = await Note.get(author=alice)
    assert note.visibility == "followers"
    assert note.to == [f"{alice.ap_id}/followers"]
    assert "https://www.w3.org/ns/activitystreams#Public" not in note.to + note.cc


# --- note pages and replies -------------------------------------------------------------------------


async def test_note_page_shows_the_note_and_links_its_activitypub_id(client, as_alice, alice):
    await publish(as_alice, "A *public* post")
    note = await Note.get(author=alice)
    page = await client.get(page_of(note))
    assert page.status_code == 200
    assert f'<link rel="alternate" type="application/activity+json" href="{note.ap_id}">' in page.text
    assert "<em>public</em>" in page.text
    assert "Log in</a> to reply" in page.text
    # The id still serves JSON to fediverse software and sends browsers to this page.
    redirect = await client.get(f"/notes/{token_of(note)}", headers={"Accept": BROWSER})
    assert redirect.status_code == 302
    assert redirect.headers["location"] == page_of(note)
    document = (await client.get(f"/notes/{token_of(note)}", headers={"Accept": AP})).json()
    assert document["id"] == note.ap_id
    assert (await client.get(f"/@alice/notes/{'0' * 32}")).status_code == 404
    assert (await client.get(f"/@bob/notes/{token_of(note)}")).status_code == 404


async def test_replies_thread_under_the_note_oldest_first(settings, as_alice, alice, browsers):
    await member(settings, "carol", display_name="Carol")
    as_carol = await browsers("carol")
    await publish(as_alice, "Who plays Go?")
    parent = await Note.get(author=alice)
    page = page_of(parent)
    for text in ("Me, first", "Me too, second"):
        response = await post_form(
            as_carol,
            "/notes",
            {"content": text, "in_reply_to": str(parent.id), "back": page},
            token_page=page,
        )
        assert response.status_code == 303
        assert response.headers["location"] == page
    replies = await Note.filter(in_reply_to=parent.ap_id).order_by("id")
    assert [r.source for r in replies] == ["Me, first", "Me too, second"]
    assert alice.ap_id in replies[0].cc  # the parent's author is addressed
    thread = await as_alice.get(page)
    assert "Replies (2)" in thread.text
    assert thread.text.index("Me, first") < thread.text.index("Me too, second")
    reply_page = await as_alice.get(page_of(replies[0], "carol"))
    assert "In reply to" in reply_page.text and f'href="{parent.url}"' in reply_page.text


async def test_reply_errors_stay_on_the_thread(as_alice, alice):
    await publish(as_alice, "Root")
    parent = await Note.get(author=alice)
    page = page_of(parent)
    data = {"content": "", "in_reply_to": str(parent.id), "back": page}
    response = await post_form(as_alice, "/notes", data, token_page=page)
    assert response.status_code == 400
    assert "Write something first." in response.text
    assert "Root" in response.text
    missing = await post_form(as_alice, "/notes", {**data, "content": "hi", "in_reply_to": "999999"})
    assert missing.status_code == 404
    assert await Note.filter(in_reply_to__not_isnull=True).count() == 0


async def test_reply_to_a_stored_remote_note_reaches_its_author(
    app, as_alice, alice, bob, fediverse, run_workers
):
    bob_actor = await stored(app, bob)
    remote = await Note.create(
        ap_id=f"{bob.id}/statuses/1",
        author=bob_actor,
        content="<p>Anyone for chess?</p>",
        to=["https://www.w3.org/ns/activitystreams#Public"],
        published=alice.created_at,
    )
    response = await publish(as_alice, "Count me in", in_reply_to=remote.ap_id)
    assert response.status_code == 303
    reply = await Note.get(author=alice)
    assert reply.in_reply_to == remote.ap_id
    ((create, inboxes),) = await queued("Create")
    assert create["object"]["inReplyTo"] == remote.ap_id
    assert bob.id in create["object"]["cc"]
    assert inboxes == ["https://remote.example/inbox"]
    await run_workers()
    assert "Create" in fediverse.types_to("https://remote.example/inbox")


# --- deleting notes ---------------------------------------------------------------------------------


async def test_author_deletes_a_note_which_becomes_a_tombstone(
    app, client, as_alice, alice, bob, run_workers
):
    await remote_follower(app, bob, alice)
    await publish(as_alice, "Oops")
    note = await Note.get(author=alice)
    page = page_of(note)
    assert "Delete</button>" in (await as_alice.get(page)).text
    response = await post_form(as_alice, f"/notes/{token_of(note)}/delete", {"back": page}, token_page=page)
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    assert not await Note.exists()
    assert await Tombstone.filter(ap_id=note.ap_id).exists()
    gone = await client.get(f"/notes/{token_of(note)}", headers={"Accept": AP})
    assert gone.status_code == 410
    assert gone.json()["type"] == "Tombstone"
    assert (await client.get(page)).status_code == 410
    ((delete, inboxes),) = await queued("Delete")
    assert delete["object"] == note.ap_id or delete["object"]["id"] == note.ap_id
    assert inboxes == ["https://remote.example/inbox"]
    assert "Your post is deleted." in (await as_alice.get("/")).text


async def test_member_cannot_delete_someone_elses_note(settings, as_alice, alice, browsers):
    await member(settings, "carol")
    as_carol = await browsers("carol")
    await publish(as_alice, "Mine")
    note = await Note.get(author=alice)
    page = await as_carol.get(page_of(note))
    assert "Delete</button>" not in page.text
    response = await post_form(as_carol, f"/notes/{token_of(note)}/delete", {}, token_page=page_of(note))
    assert response.status_code == 403
    assert "You can only delete your own posts." in response.text
    assert await Note.exists(id=note.id)
    assert not await Tombstone.exists()


# --- who sees followers-only notes ------------------------------------------------------------------


async def test_followers_only_note_is_hidden_from_strangers(client, settings, as_alice, alice, browsers):
    carol = await member(settings, "carol")
    as_carol = await browsers("carol")
    await publish(as_alice, "Secret meetup spot", visibility="followers")
    note = await Note.get(author=alice)
    page = page_of(note)
    assert (await as_alice.get(page)).status_code == 200
    for stranger in (client, as_carol):
        response = await stranger.get(page)
        assert response.status_code == 404
        assert "Secret meetup spot" not in response.text
    assert (await client.get(f"/notes/{token_of(note)}", headers={"Accept": AP})).status_code == 404
    # Replying to it or deleting it does not reveal it either.
    reply = await post_form(as_carol, "/notes", {"content": "hi", "in_reply_to": str(note.id)})
    assert reply.status_code == 404
    delete = await post_form(as_carol, f"/notes/{token_of(note)}/delete", {})
    assert delete.status_code == 404
    await Follow.create(follower=carol, followee=alice, state="accepted")
    allowed = await as_carol.get(page)
    assert allowed.status_code == 200
    assert "Secret meetup spot" in allowed.text
    assert "Followers only" in allowed.text
    assert '<meta name="robots" content="noindex">' in allowed.text


# --- find people ------------------------------------------------------------------------------------


async def test_search_by_handle_shows_the_card_with_a_follow_button(as_alice, bob):
    page = await as_alice.get("/search", params={"q": "@bob@remote.example"})
    assert page.status_code == 200
    actor = await Actor.get(ap_id=bob.id)
    assert "Bob" in page.text and "@bob@remote.example" in page.text
    assert f'name="actor_id" value="{actor.id}"' in page.text
    assert ">Follow</button>" in page.text
    # A pasted actor id and an acct: URI find the same person.
    by_id = await as_alice.get("/search", params={"q": bob.id})
    assert f'name="actor_id" value="{actor.id}"' in by_id.text
    assert await Actor.filter(ap_id=bob.id).count() == 1


async def test_search_finds_local_members_by_short_handle(settings, as_alice):
    await member(settings, "carol", display_name="Carol")
    for query in ("carol", "@carol", "@carol@fedi.test", "https://fedi.test/@carol"):
        page = await as_alice.get("/search", params={"q": query})
        assert page.status_code == 200, query
        assert "@carol@fedi.test" in page.text
        assert 'href="/@carol"' in page.text
    mine = await as_alice.get("/search", params={"q": "@alice"})
    assert "This is you." in mine.text and ">Follow</button>" not in mine.text


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("@nobody@remote.example", 404, "We could not find @nobody@remote.example"),
        ("@bob@unknown.example", 404, "We could not find"),
        ("https://remote.example/users/nobody", 404, "We could not find"),
        ("@nobody", 404, "We could not find"),
        ("@a@b@c", 400, "Enter a handle like @name@example.social"),
        ("x" * 600, 400, "too long"),
    ],
)
async def test_unknown_people_get_a_clear_message(as_alice, bob, query, status, message):
    page = await as_alice.get("/search", params={"q": query})
    assert page.status_code == status
    assert message in page.text
    assert 'name="actor_id"' not in page.text


async def test_search_and_authorize_interaction_need_a_login(client, as_alice, bob):
    for path in ("/search?q=@bob@remote.example", "/authorize_interaction?uri=acct:bob@remote.example"):
        response = await client.get(path)
        assert response.status_code == 303
        assert response.headers["location"] == "/login"
    page = await as_alice.get("/authorize_interaction", params={"uri": "acct:bob@remote.example"})
    assert page.status_code == 200
    assert "@bob@remote.example" in page.text and ">Follow</button>" in page.text


async def test_hostile_remote_profile_is_escaped_on_the_card(as_alice, fediverse):
    mallory = fediverse.add_actor("mallory", "evil.example", slot=1)
    document = fediverse.documents[mallory.id]
    document["name"] = '<script>alert("name")</script>Mallory'
    document["summary"] = (
        '<p>Hi <img src=x onerror=alert(1)> <a href="javascript:alert(2)" onclick="alert(3)">me</a>'
        '<script>alert(4)</script><iframe src="https://evil.example"></iframe></p>'
    )
    document["icon"] = {"type": "Image", "url": "javascript:alert(5)"}
    document["url"] = "javascript:alert(6)"
    fediverse.add_webfinger(mallory)
    page = await as_alice.get("/search", params={"q": "@mallory@evil.example"})
    assert page.status_code == 200
    assert "&lt;script&gt;alert(&#34;name&#34;)&lt;/script&gt;Mallory" in page.text
    assert active_markup(page.text) == []
    assert "javascript:" not in page.text
    assert "alert(4)" not in page.text


# --- follow and unfollow ----------------------------------------------------------------------------


async def test_follow_sends_a_request_to_the_personal_inbox_then_unfollow_withdraws_it(
    as_alice, alice, bob, fediverse, run_workers
):
    back = "/search?q=%40bob%40remote.example"
    card = await as_alice.get(back)
    actor = await Actor.get(ap_id=bob.id)
    response = await post_form(
        as_alice, "/follow", {"actor_id": str(actor.id), "back": back}, token_page=back
    )
    assert response.status_code == 303
    assert response.headers["location"] == back
    row = await Follow.get(follower=alice, followee=actor)
    assert row.state == "pending"
    ((follow, inboxes),) = await queued("Follow")
    assert (follow["actor"], follow["object"], follow["id"]) == (alice.ap_id, bob.id, row.ap_id)
    assert inboxes == [bob.inbox]
    await run_workers()
    assert fediverse.types_to(bob.inbox) == ["Follow"]
    card = await as_alice.get(back)
    assert "Follow request sent to @bob@remote.example." in card.text
    assert "Requested" in card.text and "Cancel request</button>" in card.text
    again = await post_form(as_alice, "/follow", {"actor_id": str(actor.id), "back": back}, token_page=back)
    assert again.status_code == 303
    assert "You already follow" in (await as_alice.get(back)).text
    response = await post_form(
        as_alice, "/unfollow", {"actor_id": str(actor.id), "back": back}, token_page=back
    )
    assert response.status_code == 303
    assert not await Follow.exists()
    ((undo, inboxes),) = await queued("Undo")
    assert undo["object"]["id"] == row.ap_id
    assert inboxes == [bob.inbox]
    assert "Your follow request to @bob@remote.example is withdrawn." in (await as_alice.get(back)).text


async def test_unfollow_an_accepted_follow(as_alice, alice, bob, app):
    actor = await stored(app, bob)
    await Follow.create(
        ap_id="https://fedi.test/activities/f1", follower=alice, followee=actor, state="accepted"
    )
    back = "/search?q=%40bob%40remote.example"
    assert "Unfollow</button>" in (await as_alice.get(back)).text
    response = await post_form(
        as_alice, "/unfollow", {"actor_id": str(actor.id), "back": back}, token_page=back
    )
    assert response.status_code == 303
    assert not await Follow.exists()
    assert "You no longer follow @bob@remote.example." in (await as_alice.get(back)).text


async def test_follow_refuses_unsafe_back_links_and_unknown_accounts(as_alice, alice, bob, app):
    actor = await stored(app, bob)
    for back in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        response = await post_form(as_alice, "/unfollow", {"actor_id": str(actor.id), "back": back})
        assert response.headers["location"] == "/"
    unknown = await post_form(as_alice, "/follow", {"actor_id": "424242"})
    assert unknown.status_code == 303
    assert "That account does not exist any more." in (await as_alice.get("/")).text
    junk = await post_form(as_alice, "/follow", {"actor_id": "x"})
    assert junk.status_code == 303
    assert not await Follow.exists()


# --- local profiles ---------------------------------------------------------------------------------


async def test_local_profile_shows_counts_and_follow_buttons(client, settings, alice, browsers, run_workers):
    await member(settings, "carol")
    as_carol = await browsers("carol")
    anonymous = await client.get("/@alice")
    assert "<strong>0</strong> followers" in anonymous.text
    assert 'action="/follow"' not in anonymous.text
    page = await as_carol.get("/@alice")
    assert ">Follow</button>" in page.text
    response = await post_form(
        as_carol, "/follow", {"actor_id": str(alice.id), "back": "/@alice"}, token_page="/@alice"
    )
    assert response.headers["location"] == "/@alice"
    await run_workers()  # the local Follow goes through the inbox queue and is accepted
    assert (await Follow.get(followee=alice)).state == "accepted"
    page = await as_carol.get("/@alice")
    assert "Unfollow</button>" in page.text
    assert "<strong>1</strong> follower" in page.text
    carol_page = await as_carol.get("/@carol")
    assert "<strong>1</strong> following" in carol_page.text
    assert 'action="/follow"' not in carol_page.text and 'action="/unfollow"' not in carol_page.text
    # The actor document is unchanged by the wrapper.
    assert (await client.get("/@alice", headers={"Accept": AP})).json()["id"] == alice.ap_id


# --- followers page: manual approval ----------------------------------------------------------------


async def test_manual_approval_requests_are_approved_declined_and_removed(
    app, client, as_alice, alice, bob, fediverse, run_workers
):
    profile = {"display_name": "Alice", "bio": "", "interests": "", "avatar_url": ""}
    saved = await post_form(
        as_alice,
        "/settings/profile",
        {**profile, "manually_approves_followers": "yes"},
        token_page="/settings/profile",
    )
    assert saved.status_code == 303
    assert (await Actor.get(id=alice.id)).manually_approves_followers is True
    assert (
        'id="manually_approves_followers" name="manually_approves_followers" type="checkbox" value="yes"'
        in ((await as_alice.get("/settings/profile")).text)
    )
    dave = fediverse.add_actor("dave", "other.example", slot=1)
    for remote in (bob, dave):
        follow = {
            "id": fediverse.new_id(remote, "follows"),
            "type": "Follow",
            "actor": remote.id,
            "object": alice.ap_id,
        }
        response = await fediverse.post_signed(client, "/users/alice/inbox", follow, as_actor=remote)
        assert response.status_code == 202
    await run_workers()
    rows = {row.follower.ap_id: row for row in await Follow.filter(followee=alice).select_related("follower")}
    assert {row.state for row in rows.values()} == {"pending"}
    page = await as_alice.get("/settings/followers")
    assert "Follow requests (2)" in page.text
    assert "@bob@remote.example" in page.text and "@dave@other.example" in page.text
    approve = await post_form(as_alice, f"/settings/followers/{rows[bob.id].id}/approve", {})
    assert approve.status_code == 303
    decline = await post_form(as_alice, f"/settings/followers/{rows[dave.id].id}/decline", {})
    assert decline.status_code == 303
    assert (await Follow.get(id=rows[bob.id].id)).state == "accepted"
    assert not await Follow.exists(id=rows[dave.id].id)
    await run_workers()
    assert "Accept" in fediverse.types_to(bob.inbox)
    assert "Reject" in fediverse.types_to(dave.inbox)
    page = await as_alice.get("/settings/followers")
    assert "You declined the request from @dave@other.example." in page.text
    assert "Your followers (1)" in page.text and "Remove follower</button>" in page.text
    # Approving again, or deciding someone else's request, finds nothing.
    assert (
        await post_form(as_alice, f"/settings/followers/{rows[bob.id].id}/approve", {})
    ).status_code == 404
    remove = await post_form(as_alice, f"/settings/followers/{rows[bob.id].id}/remove", {})
    assert remove.status_code == 303
    assert not await Follow.exists()
    await run_workers()
    assert fediverse.types_to(bob.inbox).count("Reject") == 1
    assert "@bob@remote.example no longer follows you." in (await as_alice.get("/settings/followers")).text


async def test_followers_page_is_for_the_owner_only(client, settings, as_alice, alice, browsers):
    carol = await member(settings, "carol")
    request = await Follow.create(follower=carol, followee=alice, state="pending")
    assert (await client.get("/settings/followers")).headers["location"] == "/login"
    as_carol = await browsers("carol")
    page = await as_carol.get("/settings/followers")
    assert "No one is waiting." in page.text
    assert "@alice@fedi.test" in page.text and "Requested" in page.text  # carol's own follow of alice
    response = await post_form(as_carol, f"/settings/followers/{request.id}/approve", {})
    assert response.status_code == 404
    assert (await Follow.get(id=request.id)).state == "pending"
    assert (await post_form(as_alice, f"/settings/followers/{request.id}/wave", {})).status_code == 404


async def test_profile_save_announces_the_update(app, as_alice, alice, bob):
    await remote_follower(app, bob, alice)
    profile = {"display_name": "Alice L.", "bio": "", "interests": "", "avatar_url": ""}
    response = await post_form(as_alice, "/settings/profile", profile, token_page="/settings/profile")
    assert response.status_code == 303
    ((update, inboxes),) = await queued("Update")
    assert update["object"]["name"] == "Alice L."
    assert inboxes == ["https://remote.example/inbox"]


# --- deleting the account ---------------------------------------------------------------------------


async def test_member_deletes_their_account_with_the_password(app, client, as_alice, alice, bob):
    await remote_follower(app, bob, alice)
    page = await as_alice.get("/settings/delete")
    assert page.status_code == 200 and "Delete my account</button>" in page.text
    wrong = await post_form(
        as_alice, "/settings/delete", {"password": "not it at all"}, token_page="/settings/delete"
    )
    assert wrong.status_code == 400
    assert "That password is not right." in wrong.text
    assert await Account.exists()
    response = await post_form(
        as_alice, "/settings/delete", {"password": PASSWORD}, token_page="/settings/delete"
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    assert "Your account is deleted" in (await as_alice.get("/")).text
    assert not await Account.exists()
    assert (await Actor.get(id=alice.id)).deleted_at is not None
    ((delete, inboxes),) = await queued("Delete")
    assert delete["object"] == alice.ap_id
    assert inboxes == ["https://remote.example/inbox"]
    assert (await client.get("/@alice")).status_code == 404
    assert (await client.get("/settings/delete")).headers["location"] == "/login"


# --- CSRF -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/notes",
        "/notes/{token}/delete",
        "/follow",
        "/unfollow",
        "/settings/followers/{follow}/approve",
        "/settings/followers/{follow}/decline",
        "/settings/followers/{follow}/remove",
        "/settings/delete",
    ],
)
@pytest.mark.parametrize("csrf", [None, "forged"])
async def test_every_post_without_the_csrf_token_is_refused(settings, as_alice, alice, path, csrf):
    carol = await member(settings, "carol")
    request = await Follow.create(follower=carol, followee=alice, state="pending")
    await publish(as_alice, "keep me")
    note = await Note.get(author=alice)
    data = {
        "content": "sneaky",
        "actor_id": str(carol.id),
        "password": PASSWORD,
        "in_reply_to": str(note.id),
    }
    if csrf is not None:
        data["csrf_token"] = csrf
    response = await as_alice.post(path.format(token=token_of(note), follow=request.id), data=data)
    assert response.status_code == 403
    assert "This form expired" in response.text
    assert await Note.all().count() == 1
    assert await Account.all().count() == 2
    assert (await Follow.get(id=request.id)).state == "pending"
    assert not await Follow.exists(follower=alice)


async def test_reply_error_on_the_home_page_keeps_the_draft_in_its_reply_box(as_alice, alice):
    await publish(as_alice, "Root")
    parent = await Note.get(author=alice)
    data = {"content": "x" * 5001 + " draft reply", "in_reply_to": str(parent.id), "back": "/"}
    response = await post_form(as_alice, "/notes", data)
    assert response.status_code == 400
    assert '<details class="reply-box" open>' in response.text
    assert "at most 5000 characters" in response.text
    assert "draft reply</textarea>" in response.text


async def test_deleting_a_reply_reaches_the_author_it_was_sent_to(app, as_alice, alice, bob):
    bob_actor = await stored(app, bob)
    remote = await Note.create(
        ap_id=f"{bob.id}/statuses/1",
        author=bob_actor,
        content="<p>Anyone for chess?</p>",
        to=["https://www.w3.org/ns/activitystreams#Public"],
        published=alice.created_at,
    )
    await publish(as_alice, "Count me in", in_reply_to=remote.ap_id)
    reply = await Note.get(author=alice)
    await post_form(as_alice, f"/notes/{token_of(reply)}/delete", {})
    ((_, inboxes),) = await queued("Delete")
    assert inboxes == ["https://remote.example/inbox"]

"""Profile pages, profile editing, content negotiation, the home timeline, headers and static files."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from fediverse_net.db.models import Account, Actor, Follow, Note
from fediverse_net.services.members import NewMember, create_member

pytestmark = pytest.mark.anyio
AP = "application/activity+json"
TOKEN_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
HOSTILE_BIO = (
    "I like **board games**.\n\n"
    "<script>alert(1)</script> <img src=x onerror=alert(1)> [click](javascript:alert(1))\n\n"
    '<a href="javascript:alert(2)" onclick="alert(3)">raw link</a> [site](https://alice.example)'
)


def active_markup(html: str) -> list[str]:
    """Tags or attributes a browser would act on."""
    found = re.findall(r"<(?:script|img|iframe|svg|style)\b", html, re.I)
    found += re.findall(r"<[^>]*\son\w+\s*=", html, re.I)
    found += re.findall(r"<[^>]*\shref\s*=\s*[\"']?\s*javascript:", html, re.I)
    return found


@pytest.fixture
async def alice(settings):
    new = NewMember(handle="alice", password="correct horse", display_name="Alice")
    account = await create_member(settings, new)
    await account.fetch_related("actor")
    return account


async def token_from(client, path):
    return TOKEN_RE.search((await client.get(path)).text).group(1)


@pytest.fixture
async def logged_in(client, alice):
    token = await token_from(client, "/login")
    data = {"csrf_token": token, "handle": "alice", "password": "correct horse"}
    response = await client.post("/login", data=data)
    assert response.status_code == 303
    return client


async def save_profile(client, **fields):
    data = {"display_name": "Alice", "bio": "", "interests": "", "avatar_url": "", **fields}
    token = await token_from(client, "/settings/profile")
    return await client.post("/settings/profile", data={"csrf_token": token, **data})


# --- profile editing --------------------------------------------------------------------------------


async def test_hostile_bio_is_sanitized_and_published_as_the_person_summary(logged_in, client):
    response = await save_profile(client, bio=HOSTILE_BIO)
    assert response.status_code == 303
    actor = await Actor.get(handle="alice")
    assert "<strong>board games</strong>" in actor.summary
    assert active_markup(actor.summary) == []
    assert '<a href="https://alice.example" target="_blank" rel="nofollow noopener noreferrer">site</a>' in (
        actor.summary
    )
    assert actor.document["bio_source"] == HOSTILE_BIO.strip()
    person = (await client.get("/users/alice", headers={"Accept": AP})).json()
    assert person["summary"] == actor.summary
    page = await client.get("/@alice")
    assert "<strong>board games</strong>" in page.text
    assert active_markup(page.text) == []
    # The form shows the Markdown source back, escaped.
    form = await client.get("/settings/profile")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in form.text
    assert "<script>" not in form.text


async def test_profile_fields_are_saved_and_normalised(logged_in, client):
    response = await save_profile(
        client,
        display_name="  Alice\nLiddell ",
        interests="Board Games, #hiking, board games, , Tea",
        avatar_url="https://cdn.example/alice.png",
        discoverable="yes",
    )
    assert response.status_code == 303
    assert "Your profile is saved." in (await client.get("/settings/profile")).text
    account = await Account.get(actor__handle="alice").select_related("actor")
    assert account.interests == ["board games", "hiking", "tea"]
    assert account.actor.name == "Alice Liddell"
    assert account.actor.avatar_url == "https://cdn.example/alice.png"
    assert account.actor.discoverable is True
    page = await client.get("/@alice")
    assert '<img class="avatar u-photo" src="https://cdn.example/alice.png"' in page.text
    assert "<li>board games</li>" in page.text
    person = (await client.get("/users/alice", headers={"Accept": AP})).json()
    assert person["name"] == "Alice Liddell"
    assert person["discoverable"] is True
    # Unticking the box turns it off again.
    await save_profile(client, display_name="Alice")
    assert (await Actor.get(handle="alice")).discoverable is False


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"display_name": "x" * 101}, "The display name is too long: at most 100 characters"),
        ({"bio": "y" * 2001}, "The bio is too long: at most 2000 characters"),
        ({"interests": ",".join(f"t{i}" for i in range(11))}, "at most 10 interests"),
        ({"interests": "z" * 31}, "is too long: at most 30 characters"),
        ({"avatar_url": "javascript:alert(1)"}, "must be a web address starting with https://"),
        ({"avatar_url": "ftp://x.example/a.png"}, "must be a web address starting with https://"),
        ({"avatar_url": "https://x.example/" + "a" * 500}, "at most 512 characters"),
        ({"bio": "b" * 10_001}, "is too long: at most 10000 characters"),
    ],
)
async def test_invalid_profile_is_refused_with_a_message(logged_in, client, fields, message):
    response = await save_profile(client, **fields)
    assert response.status_code == 400
    assert message in response.text
    actor = await Actor.get(handle="alice")
    assert (actor.name, actor.summary, actor.avatar_url) == ("Alice", "", None)


async def test_profile_settings_need_a_login(client):
    response = await client.get("/settings/profile")
    assert response.status_code == 303
    assert response.headers["location"] == "/login"


# --- /@handle and content negotiation --------------------------------------------------------------


async def test_profile_page_links_to_the_actor_document(client, alice):
    response = await client.get("/@alice", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<link rel="alternate" type="application/activity+json" href="https://fedi.test/users/alice">' in (
        response.text
    )
    link = '<https://fedi.test/users/alice>; rel="alternate"; type="application/activity+json"'
    assert response.headers["link"] == link
    assert "accept" in response.headers["vary"].lower()
    assert '<h1 class="p-name">Alice</h1>' in response.text
    assert "@alice@fedi.test" in response.text


@pytest.mark.parametrize(
    "accept", [AP, 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"']
)
async def test_profile_url_serves_the_actor_to_activitypub_clients(client, alice, accept):
    response = await client.get("/@alice", headers={"Accept": accept})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(AP)
    assert "accept" in response.headers["vary"].lower()
    document = response.json()
    assert document["id"] == "https://fedi.test/users/alice"
    assert document["type"] == "Person"
    assert document == (await client.get("/users/alice", headers={"Accept": AP})).json()


async def test_unknown_pending_and_deleted_profiles_are_not_found(client, settings, alice):
    from fediverse_net.deps import utcnow

    await create_member(settings, NewMember(handle="pat", password="correct horse", approved=False))
    gone = await create_member(settings, NewMember(handle="gus", password="correct horse"))
    await gone.fetch_related("actor")
    gone.actor.deleted_at = utcnow()
    await gone.actor.save()
    for handle in ("nobody", "pat", "gus"):
        page = await client.get(f"/@{handle}")
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")
        assert (await client.get(f"/@{handle}", headers={"Accept": AP})).status_code == 404


# --- home -------------------------------------------------------------------------------------------


async def test_anonymous_home_describes_the_instance(client, settings):
    response = await client.get("/")
    assert response.status_code == 200
    assert f"<h1>{settings.instance_name}</h1>" in response.text
    assert settings.instance_description in response.text
    assert 'href="/signup"' in response.text
    assert "set-cookie" not in response.headers  # no session for a plain visit


async def remote_actor(handle: str) -> Actor:
    ap_id = f"https://remote.example/users/{handle}"
    return await Actor.create(
        ap_id=ap_id,
        type="Person",
        username=handle,
        domain="remote.example",
        inbox_url=f"{ap_id}/inbox",
        url=f"https://remote.example/@{handle}",
        name=handle.title(),
    )


async def note(author: Actor, text: str, when: datetime, **extra) -> Note:
    return await Note.create(
        ap_id=f"{author.ap_id}/notes/{text.replace(' ', '-')}",
        author=author,
        content=f"<p>{text}</p>",
        published=when,
        **extra,
    )


async def test_home_timeline_shows_own_and_followed_notes_newest_first(logged_in, client, alice):
    bob, carol, dan = await remote_actor("bob"), await remote_actor("carol"), await remote_actor("dan")
    await Follow.create(follower=alice.actor, followee=bob, state="accepted")
    await Follow.create(follower=alice.actor, followee=dan, state="pending")
    start = datetime(2026, 9, 1, 10, tzinfo=UTC)
    await note(alice.actor, "alice first", start)
    await note(bob, "bob second", start + timedelta(minutes=1))
    await note(carol, "carol not followed", start + timedelta(minutes=2))
    await note(dan, "dan pending follow", start + timedelta(minutes=3))
    await note(bob, "bob direct to someone", start + timedelta(minutes=4), visibility="direct")
    hostile = "bob hostile <script>alert(1)</script><img src=x onerror=alert(1)>"
    await note(bob, hostile, start + timedelta(minutes=5), url="javascript:alert(1)")
    response = await client.get("/")
    text = response.text
    assert "bob second" in text and "alice first" in text
    assert text.index("bob hostile") < text.index("bob second") < text.index("alice first")
    for hidden in ("carol not followed", "dan pending follow", "bob direct to someone"):
        assert hidden not in text
    assert active_markup(text) == []
    assert 'href="javascript:' not in text


async def test_home_timeline_pages_by_twenty(logged_in, client, alice):
    start = datetime(2026, 9, 1, 10, tzinfo=UTC)
    for i in range(25):
        await note(alice.actor, f"post {i:02d}", start + timedelta(minutes=i))
    first = (await client.get("/")).text
    assert first.count('<article class="note">') == 20
    assert "post 24" in first and "post 05" in first and "post 04" not in first
    assert 'href="/?page=2"' in first
    second = (await client.get("/?page=2")).text
    assert second.count('<article class="note">') == 5
    assert "post 04" in second and "post 00" in second
    assert 'href="/?page=1"' in second and "?page=3" not in second
    assert (await client.get("/?page=oops")).status_code == 200


# --- headers and static files -----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/login", "/signup", "/@alice", "/@nobody"])
async def test_pages_carry_security_headers(client, alice, path):
    response = await client.get(path)
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "style-src 'self'" in csp and "form-action 'self'" in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"].startswith("private")
    assert "<script" not in response.text
    assert " style=" not in response.text


async def test_stylesheet_is_served(client):
    response = await client.get("/static/style.css")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert "font" in response.text

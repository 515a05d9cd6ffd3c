"""Anti-spam rate limits (429 + Retry-After), privacy of actor documents, security headers, and a
fuzz test throwing generated activities at the inbox."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from fediverse_net.activitypub.signatures import sign_request
from fediverse_net.db.models import Follow, InboxItem, Membership, Note
from fediverse_net.services.groups.core import GroupInput, create_group
from fediverse_net.services.ratelimit import Rate, RateLimiter
from tests.web.test_social import post_form

pytestmark = pytest.mark.anyio
ALICE = "https://fedi.test/users/alice"
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")


@pytest.fixture
def settings(settings):
    return settings.with_(
        rate_limit_signup="2/1h",
        rate_limit_login="3/5m",
        rate_limit_post="2/5m",
        rate_limit_inbox="40/5m",
        rate_limit_inbox_failures="5/5m",
        rate_limit_remote_follows="3/1m",
        rate_limit_remote_joins="2/1m",
    )


@pytest.fixture
async def client(app, settings):
    """A client from a routable address (loopback is exempt from per-address inbox limits)."""
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url=settings.origin) as http:
        yield http


async def test_loopback_inbox_posts_are_not_limited_per_address(app, settings, fediverse, alice):
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url=settings.origin) as local:
        bob = fediverse.add_actor("bob")
        for _ in range(45):
            activity = {"id": fediverse.new_id(bob), "type": "Like", "actor": bob.id, "object": f"{ALICE}/x"}
            assert (await fediverse.post_signed(local, "/inbox", activity, as_actor=bob)).status_code == 202


def test_token_bucket_refills_and_reports_the_wait():
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    rate = Rate.parse("2/1m")
    assert (rate.count, rate.period) == (2, 60.0)
    assert limiter.hit("k", rate) == 0 and limiter.hit("k", rate) == 0
    assert limiter.hit("k", rate) == 30
    now[0] = 30.0
    assert limiter.hit("k", rate) == 0
    assert limiter.hit("other", rate) == 0
    for bad in ("x", "5/0", "5/-1"):
        with pytest.raises(ValueError):
            Rate.parse(bad)


async def test_E40_signup_and_login_are_limited_per_address(client, alice):
    for i in range(2):
        data = {"handle": f"spammer{i}", "password": "correct horse battery"}
        assert (await post_form(client, "/signup", data, token_page="/signup")).status_code == 303
        await client.post("/logout", data={"csrf_token": "x"})
        client.cookies.clear()
    third = await post_form(
        client, "/signup", {"handle": "spammer9", "password": "x" * 12}, token_page="/signup"
    )
    assert third.status_code == 429 and int(third.headers["retry-after"]) > 0
    for _ in range(3):
        wrong = await post_form(
            client, "/login", {"handle": "alice", "password": "nope"}, token_page="/login"
        )
        assert wrong.status_code == 400
    limited = await post_form(client, "/login", {"handle": "alice", "password": "nope"}, token_page="/login")
    assert limited.status_code == 429 and "retry-after" in limited.headers


async def test_posting_is_limited_per_member(alice, browsers):
    browser = await browsers("alice")
    codes = [
        (await post_form(browser, "/notes", {"content": f"post {i}", "visibility": "public"})).status_code
        for i in range(3)
    ]
    assert codes == [303, 303, 429]
    assert await Note.all().count() == 2


async def test_E40_bad_signatures_from_one_address_are_throttled(client, fediverse, alice):
    for i in range(12):
        actor = fediverse.add_actor(f"rnd{i}", f"h{i}.example", slot=i % 3)
        body = json.dumps(
            {"id": f"{actor.id}/a/1", "type": "Follow", "actor": actor.id, "object": ALICE}
        ).encode()
        headers = sign_request(
            "POST", "https://fedi.test/inbox", body, key=fediverse.add_actor("x", "k.example", slot=4).key
        )
        headers["Signature"] = headers["Signature"].replace("https://k.example/users/x", actor.id)
        response = await client.post("/inbox", content=body, headers=headers)
        if i >= 5:
            assert response.status_code == 429 and int(response.headers["retry-after"]) > 0
        else:
            assert response.status_code == 401
    assert len(fediverse.fetched) <= 5  # key fetches per source are bounded


async def test_F13_inbox_flood_from_one_address_gets_429(client, fediverse, alice):
    bob = fediverse.add_actor("bob")
    statuses = []
    for _ in range(45):
        activity = {"id": fediverse.new_id(bob), "type": "Like", "actor": bob.id, "object": f"{ALICE}/x"}
        statuses.append((await fediverse.post_signed(client, "/inbox", activity, as_actor=bob)).status_code)
    assert statuses[:40] == [202] * 40 and set(statuses[40:]) == {429}


async def test_E35_follow_spam_per_remote_domain_is_limited(client, fediverse, alice, run_workers):
    statuses = []
    for i in range(5):
        actor = fediverse.add_actor(f"s{i}", "spam.example")
        follow = {"id": fediverse.new_id(actor), "type": "Follow", "actor": actor.id, "object": ALICE}
        statuses.append((await fediverse.post_signed(client, "/inbox", follow, as_actor=actor)).status_code)
    assert statuses == [202, 202, 202, 429, 429]


async def test_E35_join_spam_per_remote_domain_is_limited(client, fediverse, alice, settings, run_workers):
    group = await create_group(settings, "hikers", alice, GroupInput(name="Hikers"))
    statuses = []
    for i in range(4):
        actor = fediverse.add_actor(f"j{i}", "joins.example")
        join = {"id": fediverse.new_id(actor), "type": "Join", "actor": actor.id, "object": group.ap_id}
        statuses.append((await fediverse.post_signed(client, "/inbox", join, as_actor=actor)).status_code)
    other = fediverse.add_actor("fine", "elsewhere.example")
    join = {"id": fediverse.new_id(other), "type": "Join", "actor": other.id, "object": group.ap_id}
    statuses.append((await fediverse.post_signed(client, "/inbox", join, as_actor=other)).status_code)
    assert statuses == [202, 202, 429, 429, 202]  # one domain's budget, not everyone's
    await run_workers()
    assert await Membership.filter(group=group).count() == 1 + 3  # the owner, two from joins.example, one


async def test_no_contact_detail_in_actor_documents(client, alice, browsers):
    browser = await browsers("alice")
    form = {"display_name": "Alice", "bio": "Mail me: alice@example.com", "interests": "go"}
    assert (
        await post_form(browser, "/settings/profile", form, token_page="/settings/profile")
    ).status_code == 303
    document = (await client.get("/users/alice", headers={"Accept": "application/activity+json"})).json()
    text = json.dumps({k: v for k, v in document.items() if k != "summary"})
    assert not EMAIL.search(text.replace("@fedi.test", ""))
    for key in ("email", "phone", "password", "password_hash", "application_text"):
        assert key not in text


async def test_security_headers_on_every_page(client, alice):
    for path in ("/", "/login", "/signup", "/@alice", "/search", "/nope", "/.well-known/nodeinfo"):
        response = await client.get(path)
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "script-src" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"


# --- fuzz: generated activities at the inbox -----------------------------------------------------------

BOB = "https://remote.example/users/bob"
IRIS = st.sampled_from(
    [
        BOB,
        f"{BOB}/statuses/1",
        "https://remote.example/x",
        "https://other.example/y",
        "https://fedi.test/users/nobody",
        "https://fedi.test/notes/zzz",
        "not a url",
        "",
        "javascript:alert(1)",
        "https://www.w3.org/ns/activitystreams#Public",
    ]
)
KEYS = st.sampled_from(
    [
        "id",
        "type",
        "actor",
        "object",
        "to",
        "cc",
        "tag",
        "href",
        "attributedTo",
        "inReplyTo",
        "content",
        "name",
        "target",
    ]
)
TYPES = st.sampled_from(
    [
        "Follow",
        "Undo",
        "Create",
        "Update",
        "Delete",
        "Accept",
        "Reject",
        "Block",
        "Flag",
        "Like",
        "Announce",
        "Note",
        "Person",
        "Mention",
        "Tombstone",
    ]
)
LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20), IRIS, TYPES
)
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=6),
    max_leaves=25,
)
ACTIVITIES = st.fixed_dictionaries(
    {
        "id": st.integers(0, 10**9).map(lambda n: f"{BOB}/fuzz/{n}") | IRIS,
        "type": TYPES | st.text(max_size=8),
        "actor": st.just(BOB) | VALUES,
    },
    optional={k: VALUES for k in ("object", "to", "cc", "tag", "inReplyTo", "content", "target")},
)
BUGS = (
    "TypeError",
    "KeyError",
    "AttributeError",
    "IndexError",
    "ValueError",
    "AssertionError",
    "RecursionError",
)


@hyp_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(activity=ACTIVITIES)
async def test_fuzz_generated_activities_never_500_nor_store_garbage(
    client, fediverse, alice, run_workers, activity
):
    bob = fediverse.add_actor("bob", "remote.example")
    response = await fediverse.post_signed(client, "/inbox", activity, as_actor=bob)
    assert response.status_code in (202, 400, 401, 403, 413, 415, 429), response.text
    await run_workers()
    assert not await Note.exists()
    assert not await Follow.exists()
    errors = await InboxItem.filter(error__not_isnull=True).values_list("error", flat=True)
    assert not [e for e in errors if str(e).startswith(BUGS)], errors

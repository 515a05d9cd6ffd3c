"""Security-matrix rows (shared/security-matrix.md §5, §6) not covered elsewhere, named after the row.

tests/safety/README.md maps every row to its test. Remote servers are a FakeFediverse; workers are
cranked by hand.
"""

from __future__ import annotations

import json
import re

import pytest

from fediverse_net.activitypub.actors import MAX_NAME, MAX_SUMMARY, parse_actor
from fediverse_net.activitypub.signatures import sign_request
from fediverse_net.db.models import (
    Actor,
    Follow,
    InboxItem,
    Note,
    PublicKey,
    Report,
)
from fediverse_net.services import instance_admin
from fediverse_net.services.blocks import block_actor
from fediverse_net.services.members import HANDLE_RE
from fediverse_net.services.remote_actors import resolve_actor
from fediverse_net.workers.runner import WorkerRunner
from tests.fakes import fediverse as fakes

pytestmark = pytest.mark.anyio
AP = "application/activity+json"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
ALICE = "https://fedi.test/users/alice"


def follow_of(fediverse, actor, target=ALICE):
    return {"id": fediverse.new_id(actor, "follows"), "type": "Follow", "actor": actor.id, "object": target}


def create_of(fediverse, actor, *, to=None, cc=None, **extra):
    note_id = fediverse.new_id(actor, "statuses")
    note = {
        "id": note_id,
        "type": "Note",
        "attributedTo": actor.id,
        "content": "<p>hello</p>",
        "published": "2026-11-01T10:00:00Z",
        "to": to or [ALICE],
        "cc": cc or [],
        **extra,
    }
    return {
        "id": f"{note_id}/activity",
        "type": "Create",
        "actor": actor.id,
        "to": note["to"],
        "object": note,
    }


# --- B. origin, ownership, authorization --------------------------------------------------------------


async def test_B16_delete_by_another_actor_leaves_the_note(
    client, fediverse, alice, bob, mallory, run_workers
):
    create = create_of(fediverse, bob)
    await fediverse.post_signed(client, "/inbox", create, as_actor=bob)
    await run_workers()
    note_id = create["object"]["id"]
    forged = {"id": f"{mallory.id}/d/1", "type": "Delete", "actor": mallory.id, "object": note_id}
    assert (await fediverse.post_signed(client, "/inbox", forged, as_actor=mallory)).status_code == 202
    await run_workers()
    assert await Note.filter(ap_id=note_id).exists()


async def test_B17_update_of_another_actors_note_is_rejected(
    client, fediverse, alice, bob, mallory, run_workers
):
    create = create_of(fediverse, bob)
    await fediverse.post_signed(client, "/inbox", create, as_actor=bob)
    await run_workers()
    forged_note = {**create["object"], "content": "<p>pwned</p>", "updated": "2026-11-02T10:00:00Z"}
    update = {"id": f"{mallory.id}/u/1", "type": "Update", "actor": mallory.id, "object": forged_note}
    assert (await fediverse.post_signed(client, "/inbox", update, as_actor=mallory)).status_code == 202
    await run_workers()
    note = await Note.get(ap_id=create["object"]["id"])
    assert "pwned" not in note.content


async def test_B18_forwarded_actor_update_cannot_swap_the_key(
    client, fediverse, alice, bob, mallory, run_workers, deps
):
    await resolve_actor(deps, bob.id)
    _, other_public = fakes.test_keypair(3)
    forged = dict(fediverse.documents[bob.id])
    forged["publicKey"] = {"id": bob.key_id, "owner": bob.id, "publicKeyPem": other_public}
    update = {
        "id": f"{bob.id}#updates/9",
        "type": "Update",
        "actor": bob.id,
        "object": forged,
        "signature": {"type": "RsaSignature2017", "creator": mallory.key_id, "signatureValue": "x"},
    }
    # Relayed by mallory (signer != actor): applied only from what bob's origin serves.
    response = await fediverse.post_signed(client, "/inbox", update, as_actor=mallory)
    assert response.status_code == 202
    await run_workers()
    key = await PublicKey.get(key_id=bob.key_id)
    assert key.pem == bob.public_pem


async def test_B20_flag_is_capped_foreign_objects_dropped(client, fediverse, alice, bob, run_workers):
    objects = [f"https://third.example/notes/{i}" for i in range(10_000)] + [ALICE]
    flag = {
        "id": fediverse.new_id(bob, "flags"),
        "type": "Flag",
        "actor": bob.id,
        "content": "spam " * 2000,
        "object": [ALICE, *objects],
    }
    assert (await fediverse.post_signed(client, "/inbox", flag, as_actor=bob)).status_code == 202
    await run_workers()
    report = await Report.get(ap_id=flag["id"])
    assert report.origin == "remote" and report.reporter_domain == "remote.example"
    assert report.target_ap_id == ALICE
    assert report.object_ids == []  # nothing but our own objects is kept
    assert len(report.comment) <= 5000
    # A Flag about nothing of ours is dropped.
    foreign = {**flag, "id": fediverse.new_id(bob, "flags"), "object": objects[:5]}
    await fediverse.post_signed(client, "/inbox", foreign, as_actor=bob)
    await run_workers()
    assert await Report.all().count() == 1


async def test_B20_flag_from_a_suspended_domain_is_403(client, fediverse, alice, mallory, deps):
    await instance_admin.block_domain(deps, None, "evil.example")
    flag = {"id": fediverse.new_id(mallory, "flags"), "type": "Flag", "actor": mallory.id, "object": [ALICE]}
    assert (await fediverse.post_signed(client, "/inbox", flag, as_actor=mallory)).status_code == 403
    assert not await Report.exists()


async def test_B21_suspended_actor_refused_except_cleanup(client, fediverse, alice, bob, deps, run_workers):
    stored = await resolve_actor(deps, bob.id)
    await instance_admin.sanction_actor(deps, None, stored, "suspend", "spam")
    fetched_before = list(fediverse.fetched)
    response = await fediverse.post_signed(client, "/inbox", follow_of(fediverse, bob), as_actor=bob)
    assert response.status_code == 403
    assert fediverse.fetched == fetched_before
    assert not await InboxItem.exists()
    for kind in ("Delete", "Undo", "Reject", "Update"):
        activity = {"id": fediverse.new_id(bob), "type": kind, "actor": bob.id, "object": f"{bob.id}/x"}
        assert (await fediverse.post_signed(client, "/inbox", activity, as_actor=bob)).status_code == 202


async def test_B21_notes_of_a_suspended_actor_are_not_shown(
    client, fediverse, alice, bob, deps, run_workers, browsers
):
    stored = await resolve_actor(deps, bob.id)
    await Follow.create(follower=alice, followee=stored, state="accepted", ap_id=f"{ALICE}#f/1")
    await fediverse.post_signed(
        client, "/inbox", create_of(fediverse, bob, to=[PUBLIC], content="<p>boost me</p>"), as_actor=bob
    )
    await run_workers()
    browser = await browsers("alice")
    assert "boost me" in (await browser.get("/")).text
    await instance_admin.sanction_actor(deps, None, stored, "suspend")
    assert "boost me" not in (await browser.get("/")).text


# --- C. content, size, rendering ------------------------------------------------------------------------


def test_C24_actor_fields_are_capped():
    document = {
        "id": "https://remote.example/users/huge",
        "type": "Person",
        "preferredUsername": "huge",
        "inbox": "https://remote.example/users/huge/inbox",
        "name": "n" * 100_000,
        "summary": "s" * 1_000_000,
        "attachment": [{"type": "PropertyValue", "name": "x", "value": "y"}] * 10_000,
        "alsoKnownAs": [f"https://a.example/{i}" for i in range(1000)],
        "publicKey": [
            {"id": f"https://remote.example/users/huge#k{i}", "publicKeyPem": "x"} for i in range(100)
        ],
    }
    data = parse_actor(document)
    assert len(data.name) <= MAX_NAME and len(data.summary_html) <= MAX_SUMMARY
    assert len(data.keys) <= 10
    with pytest.raises(Exception, match="preferredUsername"):
        parse_actor({**document, "preferredUsername": "u" * 10_000})


async def test_C25_note_lists_are_capped(client, fediverse, alice, bob, run_workers):
    # As many as fit in the 1 MiB body limit (row 22 refuses the rest before parsing).
    # Repeats of 50 actors: more than 100 distinct ones is a hellthread (dropped, test below).
    many = [f"https://r.example/u{i % 50}" for i in range(8000)]
    tags = [{"type": "Mention", "href": f"https://r.example/u{i % 50}"} for i in range(2000)]
    create = create_of(fediverse, bob, to=[ALICE, *many], cc=many, tag=tags)
    assert (await fediverse.post_signed(client, "/inbox", create, as_actor=bob)).status_code == 202
    await run_workers()
    note = await Note.get(ap_id=create["object"]["id"])
    assert len(note.to) <= 200 and len(note.cc) <= 200


@pytest.mark.parametrize("where", ["to", "cc", "tag", "mixed"])
async def test_C25_hellthread_naming_more_than_100_actors_is_dropped(
    client, fediverse, alice, bob, run_workers, where
):
    names = [f"https://r{i % 7}.example/users/u{i}" for i in range(101)]  # + alice = 102 distinct
    fields: dict = {"to": [ALICE]}
    if where == "to":
        fields["to"] = [ALICE, PUBLIC, *names]
    elif where == "cc":
        fields["cc"] = names
    elif where == "tag":
        fields["tag"] = [{"type": "Mention", "href": n} for n in names]
    else:
        fields |= {"cc": names[:40], "tag": [{"type": "Mention", "href": n} for n in names[40:]]}
    create = create_of(fediverse, bob, **fields)
    assert (await fediverse.post_signed(client, "/inbox", create, as_actor=bob)).status_code == 202
    await run_workers()
    assert not await Note.filter(ap_id=create["object"]["id"]).exists()


async def test_C25_100_distinct_actors_is_still_a_thread(client, fediverse, alice, bob, run_workers):
    names = [f"https://r.example/users/u{i}" for i in range(99)]  # + alice = 100 distinct
    create = create_of(fediverse, bob, to=[ALICE, PUBLIC], cc=[f"{bob.id}/followers", *names, *names])
    assert (await fediverse.post_signed(client, "/inbox", create, as_actor=bob)).status_code == 202
    await run_workers()
    assert await Note.filter(ap_id=create["object"]["id"]).exists()


HOSTILE = (
    '<p>hi<script>alert(1)</script><img src=x onerror="alert(2)">'
    '<a href="javascript:alert(3)">x</a><a href=" jav&#x09;ascript:alert(4)">y</a>'
    '<svg><animate onbegin="alert(5)"/></svg><iframe src="https://evil.example"></iframe></p>'
)
HOSTILE_NAME = '<script>alert("name")</script>\u202egnp.exe <img src=x onerror=alert(6)>'


def active_markup(html: str) -> list[str]:
    found = re.findall(r"<(?:script|iframe|svg|style|object|embed)\b", html, re.I)
    found += re.findall(r"<[^>]*\son\w+\s*=", html, re.I)
    found += re.findall(r"<[^>]*\s(?:href|src)\s*=\s*[\"']?\s*javascript:", html, re.I)
    return found


async def test_C26_C27_hostile_remote_post_and_names_are_inert_in_home_and_search(
    client, fediverse, alice, deps, run_workers, browsers
):
    evil = fediverse.add_actor("evil", "remote.example", slot=2)
    fediverse.documents[evil.id] = {**evil.document(), "name": HOSTILE_NAME, "summary": HOSTILE}
    fediverse.add_webfinger(evil)
    stored = await resolve_actor(deps, evil.id)
    await Follow.create(follower=alice, followee=stored, state="accepted", ap_id=f"{ALICE}#f/2")
    create = create_of(fediverse, evil, to=[PUBLIC], content=HOSTILE, summary='<b onclick="x()">cw</b>')
    await fediverse.post_signed(client, "/inbox", create, as_actor=evil)
    await run_workers()
    browser = await browsers("alice")
    home = await browser.get("/")
    assert "hi" in home.text and active_markup(home.text) == []
    assert "&lt;script&gt;" in home.text  # the display name is shown as text
    card = await browser.get("/search", params={"q": "@evil@remote.example"})
    assert card.status_code == 200, card.text
    assert active_markup(card.text) == []


async def test_C28_local_handles_refuse_confusables_and_bidi_controls():
    for handle in ("аlice", "alice\u202e", "al\u200dice", "ALİCE", "a" * 31):
        assert not HANDLE_RE.fullmatch(handle)
    assert HANDLE_RE.fullmatch("alice_1")


# --- E. abuse, blocks ----------------------------------------------------------------------------------


async def test_E35_blocked_domain_follow_refused_before_key_fetch(client, fediverse, alice, mallory, deps):
    await instance_admin.block_domain(deps, None, "evil.example")
    for _ in range(20):
        response = await fediverse.post_signed(
            client, "/inbox", follow_of(fediverse, mallory), as_actor=mallory
        )
        assert response.status_code == 403
    assert fediverse.fetched == []  # no key fetch, no outbound request at all
    assert fediverse.received == []
    assert not await InboxItem.exists() and not await Actor.filter(ap_id=mallory.id).exists()


async def test_E35_key_on_a_blocked_domain_or_subdomain_is_refused(client, fediverse, alice, bob, deps):
    await instance_admin.block_domain(deps, None, "evil.example")
    # The body claims bob; the keyId is on a subdomain of the blocked domain.
    body = json.dumps(follow_of(fediverse, bob)).encode()
    sub = fediverse.add_actor("x", "cdn.evil.example", slot=1)
    headers = sign_request("POST", "https://fedi.test/inbox", body, key=sub.key)
    response = await client.post("/inbox", content=body, headers=headers)
    assert response.status_code == 403
    assert fediverse.fetched == []


async def test_E36_reply_to_or_mention_of_a_blocked_account_is_dropped(
    client, fediverse, alice, bob, mallory, deps, run_workers
):
    # mallory's note addressed to alice is stored; then alice blocks mallory.
    first = create_of(fediverse, mallory)
    await fediverse.post_signed(client, "/inbox", first, as_actor=mallory)
    await run_workers()
    await block_actor(deps, alice, await resolve_actor(deps, mallory.id))
    await run_workers()
    # bob replies to mallory's note, addressed to alice: the replied-to author is blocked.
    reply = create_of(fediverse, bob, inReplyTo=first["object"]["id"])
    # bob cc's mallory on a note to alice: a cc'd account is blocked.
    cc = create_of(fediverse, bob, cc=[mallory.id])
    # mallory mentions alice directly.
    mention = create_of(fediverse, mallory, tag=[{"type": "Mention", "href": ALICE}])
    for activity, signer in ((reply, bob), (cc, bob), (mention, mallory)):
        assert (await fediverse.post_signed(client, "/inbox", activity, as_actor=signer)).status_code == 202
    await run_workers()
    for activity in (reply, cc, mention):
        assert not await Note.filter(ap_id=activity["object"]["id"]).exists()
    # Unrelated notes from bob still arrive.
    fine = create_of(fediverse, bob)
    await fediverse.post_signed(client, "/inbox", fine, as_actor=bob)
    await run_workers()
    assert await Note.filter(ap_id=fine["object"]["id"]).exists()


async def test_E36_blocked_actor_cannot_follow_the_blocker(client, fediverse, alice, bob, deps, run_workers):
    await block_actor(deps, alice, await resolve_actor(deps, bob.id))
    await run_workers()
    await fediverse.post_signed(client, "/inbox", follow_of(fediverse, bob), as_actor=bob)
    await run_workers()
    assert not await Follow.exists()
    assert [a["type"] for a in fediverse.received_json(bob.inbox)] == ["Block"]


async def test_E37_remote_collections_are_never_crawled(client, fediverse, alice, bob, deps):
    await resolve_actor(deps, bob.id)
    assert not [url for url in fediverse.fetched if url.endswith(("/followers", "/following", "/outbox"))]


async def test_E38_one_activity_referencing_many_urls_fetches_little(
    client, fediverse, alice, bob, run_workers
):
    tags = [{"type": "Mention", "href": f"https://many{i}.example/u"} for i in range(1000)]
    create = create_of(fediverse, bob, tag=tags, inReplyTo="https://elsewhere.example/n/1")
    await fediverse.post_signed(client, "/inbox", create, as_actor=bob)
    await run_workers()
    assert len(fediverse.fetched) <= 20


# --- F. faults -----------------------------------------------------------------------------------------


async def test_F4_activity_persisted_before_202_is_processed_after_a_restart(
    client, fediverse, alice, bob, app
):
    response = await fediverse.post_signed(client, "/inbox", follow_of(fediverse, bob), as_actor=bob)
    assert response.status_code == 202
    assert (await InboxItem.get()).state == "pending"  # the "process" died here
    await WorkerRunner(app.state.deps).run_pending()  # a fresh worker after the restart
    assert await Follow.filter(follower__ap_id=bob.id, followee=alice).exists()
    await WorkerRunner(app.state.deps).run_pending()
    assert await Follow.all().count() == 1

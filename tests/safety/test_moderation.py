"""Instance moderation, member blocks and mutes, reports: services, federation and pages."""

from __future__ import annotations

import json
import re

import pytest

from fediverse_net.db.models import Actor, ActorBlock, AuditLog, Follow, OutgoingActivity, Report
from fediverse_net.services import blocks, instance_admin, moderation
from fediverse_net.services.errors import ServiceError
from fediverse_net.services.follows import follow
from fediverse_net.services.remote_actors import resolve_actor
from tests.web.test_social import post_form

pytestmark = pytest.mark.anyio
ALICE = "https://fedi.test/users/alice"


async def test_block_severs_follows_sends_block_and_undo_embeds_it(
    client, fediverse, alice, bob, deps, run_workers
):
    stored = await resolve_actor(deps, bob.id)
    await Follow.create(follower=alice, followee=stored, state="accepted", ap_id=f"{ALICE}#follows/1")
    await Follow.create(follower=stored, followee=alice, state="accepted", ap_id=f"{bob.id}#follows/1")
    row = await blocks.block_actor(deps, alice, stored)
    await run_workers()
    assert not await Follow.exists()
    sent = fediverse.received_json(bob.inbox)
    assert [a["type"] for a in sent] == ["Undo", "Reject", "Block"]
    block = sent[-1]
    assert (block["actor"], block["object"], block["id"]) == (ALICE, bob.id, row.ap_id)
    await blocks.unblock(deps, alice, row.id)
    await run_workers()
    undo = fediverse.received_json(bob.inbox)[-1]
    assert undo["type"] == "Undo" and undo["object"]["type"] == "Block" and undo["object"]["id"] == row.ap_id
    assert not await ActorBlock.exists()


async def test_received_block_drops_follows_both_ways(client, fediverse, alice, bob, deps, run_workers):
    stored = await resolve_actor(deps, bob.id)
    await Follow.create(follower=alice, followee=stored, state="pending", ap_id=f"{ALICE}#follows/1")
    await Follow.create(follower=stored, followee=alice, state="accepted", ap_id=f"{bob.id}#follows/1")
    block = {"id": f"{bob.id}#blocks/1", "type": "Block", "actor": bob.id, "object": ALICE}
    assert (await fediverse.post_signed(client, "/inbox", block, as_actor=bob)).status_code == 202
    await run_workers()
    assert not await Follow.exists()


async def test_members_cannot_follow_across_a_block(fediverse, alice, bob, deps, settings):
    stored = await resolve_actor(deps, bob.id)
    await blocks.block_domain(deps, alice, "REMOTE.example")
    with pytest.raises(ServiceError):
        await follow(deps, alice, stored)
    assert await moderation.blocks_between(stored, alice)


async def test_blocked_for_is_the_one_predicate(deps, alice, bob, mallory):
    stored = await resolve_actor(deps, mallory.id)
    await blocks.block_actor(deps, alice, stored, "mute")
    assert not await moderation.blocked_for(deps, [alice.id], [mallory.id])  # mutes do not refuse
    await blocks.block_actor(deps, alice, stored, "block")
    assert await moderation.blocked_for(deps, [alice.id], [bob.id, f"{mallory.id}/statuses/1", mallory.id])
    assert await moderation.blocked_for(deps, [], [ALICE], actor=mallory.id)
    assert not await moderation.blocked_for(deps, [alice.id], [bob.id])


async def test_silenced_domain_follows_wait_for_approval(client, fediverse, alice, bob, deps, run_workers):
    await instance_admin.block_domain(deps, None, "remote.example", "silence")
    follow_activity = {"id": f"{bob.id}/follows/1", "type": "Follow", "actor": bob.id, "object": ALICE}
    assert (await fediverse.post_signed(client, "/inbox", follow_activity, as_actor=bob)).status_code == 202
    await run_workers()
    assert (await Follow.get()).state == "pending"


async def test_suspending_a_domain_ends_follows_and_is_audited(fediverse, alice, bob, deps):
    stored = await resolve_actor(deps, bob.id)
    await Follow.create(follower=stored, followee=alice, state="accepted")
    await instance_admin.block_domain(deps, None, "remote.example", reject_reports=True)
    assert not await Follow.exists()
    entry = await AuditLog.get()
    assert (entry.action, entry.target) == ("domain.suspend", "remote.example")
    with pytest.raises(ServiceError):
        await instance_admin.block_domain(deps, None, "fedi.test")
    with pytest.raises(ServiceError):
        await instance_admin.block_domain(deps, None, "not a domain!")


async def test_suspending_a_member_federates_update_suspended_and_logs_them_out(
    fediverse, alice, bob, deps, browsers
):
    stored = await resolve_actor(deps, bob.id)
    await Follow.create(follower=stored, followee=alice, state="accepted")
    browser = await browsers("alice")
    await instance_admin.suspend_member(deps, None, "alice", "spam")
    (update,) = [json.loads(o.body) for o in await OutgoingActivity.filter(type="Update")]
    assert update["object"]["suspended"] is True and update["object"]["id"] == ALICE
    page = await browser.get("/settings/blocks")
    assert page.status_code == 303 or "/login" in page.headers.get("location", "")
    await instance_admin.unsuspend_member(deps, None, "alice")
    assert not (await Actor.get(id=alice.id)).suspended


async def test_report_forwarded_as_anonymous_flag_from_the_instance_actor(
    client, fediverse, alice, bob, admin, deps, browsers, run_workers
):
    stored = await resolve_actor(deps, bob.id)
    browser = await browsers("alice")
    form = await browser.get(f"/report?actor={stored.id}")
    assert form.status_code == 200 and "anonymous copy" in form.text
    response = await post_form(
        browser,
        "/report",
        {"actor_id": str(stored.id), "comment": "spam links", "forward": "yes"},
        token_page=f"/report?actor={stored.id}",
    )
    assert response.status_code == 303, response.text
    await run_workers()
    (flag,) = [a for a in fediverse.received_json(bob.inbox) if a["type"] == "Flag"]
    assert flag["actor"] == "https://fedi.test/actor"
    assert flag["object"] == [bob.id] and flag["content"] == "spam links"
    assert "alice" not in json.dumps(flag)
    # The admin sees it in the queue, with the reporter, and resolves it.
    admin_browser = await browsers("root_admin")
    queue = await admin_browser.get("/admin/reports")
    assert "spam links" in queue.text and "@alice@fedi.test" in queue.text
    report = await Report.get()
    done = await post_form(
        admin_browser, f"/admin/reports/{report.id}/suspend", {}, token_page="/admin/reports"
    )
    assert done.status_code == 303
    assert (await Report.get()).state == "resolved"
    assert (await Actor.get(ap_id=bob.id)).suspended
    # Members cannot see the queue.
    assert (await browser.get("/admin/reports")).status_code == 403


async def test_block_and_mute_buttons_and_the_blocks_page(fediverse, alice, bob, browsers):
    browser = await browsers("alice")
    card = await browser.get("/search", params={"q": "@bob@remote.example"})
    assert card.status_code == 200
    assert 'action="/block"' in card.text and "Report</a>" in card.text
    actor_id = re.search(r'name="actor_id" value="(\d+)"', card.text).group(1)
    muted = await post_form(browser, "/block", {"actor_id": actor_id, "kind": "mute", "back": "/search"})
    assert muted.status_code == 303
    blocked = await post_form(browser, "/block", {"domain": "evil.example", "kind": "block"})
    assert blocked.status_code == 303
    page = await browser.get("/settings/blocks")
    assert "evil.example" in page.text and "@bob@remote.example" in page.text
    row = await ActorBlock.get(kind="mute")
    lifted = await post_form(browser, f"/settings/blocks/{row.id}/remove", {}, token_page="/settings/blocks")
    assert lifted.status_code == 303
    assert await ActorBlock.all().count() == 1


async def test_admin_domain_page(admin, browsers):
    browser = await browsers("root_admin")
    page = await browser.get("/admin/domains")
    assert page.status_code == 200
    added = await post_form(
        browser,
        "/admin/domains",
        {"domain": "spam.example", "severity": "silence"},
        token_page="/admin/domains",
    )
    assert added.status_code == 303
    assert "spam.example" in (await browser.get("/admin/domains")).text
    removed = await post_form(
        browser, "/admin/domains/remove", {"domain": "spam.example"}, token_page="/admin/domains"
    )
    assert removed.status_code == 303

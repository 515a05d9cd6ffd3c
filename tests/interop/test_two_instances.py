"""Two of our own instances federating (issue "Federation core", Checks C): members of A and B
follow each other through the web pages, posts travel to followers, and stop after Unfollow.

`server` is instance A and `server_b` instance B; each has its own port, data dir and database.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest

from tests.interop.harness import ServerProcess, unique_name
from tests.interop.web_session import WebSession, eventually, inbox_accepted

pytestmark = pytest.mark.interop


def status_counts(server: ServerProcess) -> dict[str, str]:
    """`fediverse-net status` of a server, as {key: value}."""
    result = server.cli("status")
    assert result.returncode == 0, result.stderr
    counts = {}
    for line in result.stdout.splitlines():
        key, _, value = line.partition("  ")
        counts[key.strip()] = value.strip()
    return counts


def settled(server: ServerProcess) -> bool:
    """No inbox item and no delivery waiting on `server`."""
    counts = status_counts(server)
    return counts.get("inbox pending") == "0" and counts.get("deliveries pending") == "0"


def create_of(server: ServerProcess, name: str, text: str) -> str:
    """The id of the Create in `name`'s public outbox whose note contains `text`."""
    outbox = httpx.get(
        server.url(f"/users/{name}/outbox?page=1"), headers={"Accept": "application/activity+json"}
    ).json()
    for item in outbox.get("orderedItems", []):
        note: Any = item.get("object") if isinstance(item, dict) else None
        if isinstance(note, dict) and text in str(note.get("content", "")):
            return str(item["id"])
    raise AssertionError(f"no Create with {text!r} in the outbox of {name}: {outbox}")


def acct(server: ServerProcess, name: str) -> str:
    return f"@{name}@{server.host}"


def test_follow_post_unfollow_between_two_instances(server, server_b):
    ann_name, bea_name = unique_name("ann"), unique_name("bea")
    bea_handle = server_b.create_user(bea_name)  # made by the CLI, then logged in through /login
    with WebSession.sign_up(server, ann_name) as ann, WebSession.log_in(server_b, bea_name) as bea:
        # Ann (A) follows Bea (B); B accepts on its own and A records the follow as accepted.
        ann.follow(bea_handle)
        eventually(ann.following_total, lambda n: n == 1, "A: ann's follow of bea is accepted")
        assert ann.relation(bea_handle) == "accepted"
        assert "Unfollow" in ann.followers_page()
        eventually(bea.followers_total, lambda n: n == 1, "B: bea has one follower")
        assert acct(server, ann_name) in bea.followers_page()

        # Bea's post reaches Ann's home timeline.
        first = f"first post from B {uuid.uuid4().hex}"
        bea.post(first)
        eventually(ann.timeline_html, lambda page: first in page, "bea's post is in ann's timeline")
        assert create_of(server_b, bea_name, first) in inbox_accepted(server)

        # Ann unfollows: B drops the follower, and Bea's next post is not sent to A.
        ann.unfollow(bea_handle)
        assert ann.following_total() == 0
        assert ann.relation(bea_handle) == "none"
        eventually(bea.followers_total, lambda n: n == 0, "B: bea's followers back to 0 after Undo")
        assert acct(server, ann_name) not in bea.followers_page()
        second = f"second post from B {uuid.uuid4().hex}"
        bea.post(second)
        second_create = create_of(server_b, bea_name, second)
        eventually(lambda: settled(server_b), bool, "B has nothing left to deliver")
        eventually(lambda: settled(server), bool, "A has nothing left to process")
        assert second_create not in inbox_accepted(server)
        assert second not in ann.timeline_html()


def test_follow_request_approved_by_hand_across_instances(server, server_b):
    ann_name, bea_name = unique_name("ann"), unique_name("bea")
    with WebSession.sign_up(server, ann_name) as ann, WebSession.sign_up(server_b, bea_name) as bea:
        bea.set_manual_approval(True)
        bea_handle = server_b.handle(bea_name)
        ann.follow(bea_handle)
        assert ann.relation(bea_handle) == "pending"
        eventually(bea.pending_requests, lambda ids: len(ids) == 1, "B: ann's request waits for bea")
        assert ann.relation(bea_handle) == "pending"
        assert re.search(r"Follow requests \(1\)", bea.followers_page())
        assert bea.approve_all() == 1
        eventually(ann.following_total, lambda n: n == 1, "A: the approved follow is accepted")
        assert ann.relation(bea_handle) == "accepted"
        assert bea.followers_total() == 1

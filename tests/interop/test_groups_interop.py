"""Groups checked by real peers (Fedify) and by a second instance of our own server.

* a Fedify peer follows an open group (Accept verified) and receives the group's Announce of a
  local member's post;
* a member peer posts into the group by mention and a SECOND peer receives the group's Announce
  of it in both forms (object id, and the Create as received);
* Undo(Follow) stops deliveries;
* Join of an approval group stays pending until a moderator approves, then Accept arrives;
* two of our instances: a member of A joins a group on B, posts, and a follower on A sees the
  group's Announce in their home timeline.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.interop.harness import (
    DEFAULT_PASSWORD,
    ServerProcess,
    unique_name,
)

pytestmark = pytest.mark.interop
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class GroupsServer(ServerProcess):
    """ServerProcess with group helpers (the CLI's `group create`, group ids)."""

    def create_group(self, name: str, owner: str, *args: str) -> str:
        result = self.cli("group", "create", name, "--owner", owner, *args)
        if result.returncode != 0:
            raise RuntimeError(f"group create {name} failed: {result.stderr.strip()}")
        return self.handle(name)

    def group_url(self, name: str) -> str:
        return f"{self.origin}/groups/{name}"


@pytest.fixture(scope="module")
def server(interop_dir: Path) -> Iterator[GroupsServer]:
    with GroupsServer(interop_dir) as process:
        yield process


@pytest.fixture(scope="module")
def server_b(interop_dir: Path) -> Iterator[GroupsServer]:
    with GroupsServer(interop_dir) as process:
        yield process


class Browser:
    """A member using the HTML forms (CSRF token from the page, then POST), cookies kept."""

    def __init__(self, server: ServerProcess, name: str) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.origin, timeout=30, follow_redirects=False)
        self.submit("/login", {"handle": name, "password": DEFAULT_PASSWORD}, page="/login")

    def submit(self, path: str, data: dict[str, str], page: str = "/") -> httpx.Response:
        token = CSRF.search(self.http.get(page).text)
        assert token, f"no form on {page}"
        response = self.http.post(path, data={"csrf_token": token.group(1), **data})
        assert response.status_code == 303, (path, response.status_code, response.text[:500])
        return response

    def get(self, path: str, **params: str) -> str:
        return self.http.get(path, params=params).text

    def close(self) -> None:
        self.http.close()


def eventually(probe, what: str, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        if result := probe():
            return result
        assert time.monotonic() < deadline, f"not within {timeout:.0f} s: {what}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def owner(server: GroupsServer) -> str:
    name = unique_name("org")
    server.create_user(name)
    return name


def test_fedify_follows_open_group_and_receives_member_post(server, owner, start_fedify):
    group = unique_name("hikers")
    server.create_group(group, owner)
    peer = start_fedify()
    found = peer.lookup(server.handle(group))
    assert found["type"] == "Group" and found["id"] == server.group_url(group)
    since = peer.mark()
    follow = peer.follow(server.handle(group))
    accept = peer.wait(type="Accept", object_id=follow["follow_id"], since=since)
    assert accept["http_sig"]["verified"] and accept["actor"] == server.group_url(group)
    browser = Browser(server, owner)
    try:
        browser.submit(f"/g/{group}/post", {"content": "Ridge walk on Saturday"}, page=f"/g/{group}")
    finally:
        browser.close()
    announce = peer.wait(type="Announce", actor=server.group_url(group), since=since)
    assert announce["http_sig"]["verified"]


def test_post_by_mention_reaches_a_second_peer_in_both_forms_until_unfollow(server, owner, start_fedify):
    group = unique_name("hikers")
    server.create_group(group, owner)
    poster = start_fedify(actors=("carol",))
    reader = start_fedify(actors=("dave",))
    for peer in (poster, reader):
        since = peer.mark()
        follow = peer.follow(server.handle(group))
        peer.wait(type="Accept", object_id=follow["follow_id"], since=since)
    since = reader.mark()
    note = poster.note(server.handle(group), "<p>Who is in for Saturday?</p>")
    compat = reader.wait(type="Announce", object_id=note["note_id"], since=since)
    wrapped = reader.wait(type="Announce", object_id=note["create_id"], since=since)
    for announce in (compat, wrapped):
        assert announce["actor"] == server.group_url(group) and announce["http_sig"]["verified"]
    # Undo(Follow) stops deliveries to the reader.
    reader.unfollow(server.handle(group))
    time.sleep(1.0)
    since, poster_since = reader.mark(), poster.mark()
    again = poster.note(server.handle(group), "<p>Still on for Saturday</p>")
    # the group did announce it (the author gets the Announce too) …
    poster.wait(type="Announce", object_id=again["note_id"], since=poster_since)
    # … but not to the reader any more
    with pytest.raises(RuntimeError):  # PeerError 408: nothing came
        reader.wait(type="Announce", object_id=again["note_id"], since=since, timeout=4)


def test_join_with_approval_is_accepted_after_a_moderator_approves(server, owner, start_fedify):
    group = unique_name("vetted")
    server.create_group(group, owner, "--join-mode", "approval")
    peer = start_fedify(actors=("erin",))
    since = peer.mark()
    join = peer.join(server.group_url(group), to=server.group_url(group))
    with pytest.raises(RuntimeError):  # PeerError 408: nothing came
        peer.wait(type="Accept", object_id=join["id"], since=since, timeout=2)
    browser = Browser(server, owner)
    try:

        def waiting() -> str | None:
            page = browser.get(f"/g/{group}/requests")
            return page if "Approve" in page else None

        queue = eventually(waiting, "the request in the approval queue")
        action = re.search(rf'action="(/g/{group}/requests/\d+/approve)"', queue)
        assert action, queue[:2000]
        browser.submit(action.group(1), {}, page=f"/g/{group}/requests")
    finally:
        browser.close()
    accept = peer.wait(type="Accept", object_id=join["id"], since=since)
    assert accept["http_sig"]["verified"] and accept["actor"] == server.group_url(group)


def test_member_of_a_joins_group_on_b_posts_and_follower_on_a_sees_it(server, server_b):
    organizer, member, follower = unique_name("org"), unique_name("ann"), unique_name("fred")
    server_b.create_user(organizer)
    group = unique_name("climbers")
    server_b.create_group(group, organizer)
    server.create_user(member)
    server.create_user(follower)
    group_id = server_b.group_url(group)
    ann, fred = Browser(server, member), Browser(server, follower)
    try:
        # fred (on A) follows the group on B
        card = fred.get("/search", q=server_b.handle(group))
        actor_id = re.search(r'name="actor_id" value="(\d+)"', card)
        assert actor_id, card[:2000]
        fred.submit("/follow", {"actor_id": actor_id.group(1), "back": "/"}, page="/")
        # ann (on A) joins the group on B and, once accepted, posts into it
        page = ann.get("/groups/find", q=group_id)
        actor_id = re.search(r'name="actor_id" value="(\d+)"', page)
        assert actor_id, page[:2000]
        ann.submit("/groups/remote/join", {"actor_id": actor_id.group(1)}, page="/groups")
        eventually(
            lambda: "You are a member" in ann.get("/groups/find", q=group_id), "ann's membership accepted"
        )
        ann.submit(
            "/groups/remote/post",
            {"actor_id": actor_id.group(1), "content": "Bouldering tonight at 7"},
            page="/groups",
        )
        # the group on B announces it; fred's home timeline on A shows it
        eventually(lambda: "Bouldering tonight at 7" in fred.get("/"), "the group's Announce on fred's home")
    finally:
        ann.close()
        fred.close()


def test_cli_group_create_and_list(server, owner):
    group = unique_name("cli")
    server.create_group(group, owner, "--join-mode", "invite", "--display-name", "CLI group")
    again = server.cli("group", "create", group, "--owner", owner)
    assert again.returncode == 1 and again.stderr.startswith("error: ") and "already taken" in again.stderr
    nobody = server.cli("group", "create", unique_name("x"), "--owner", "nobody_here")
    assert nobody.returncode == 1 and "no member" in nobody.stderr
    listed = server.cli("group", "list")
    assert listed.returncode == 0
    assert f"{group}\tCLI group\tinvite\t1 members" in listed.stdout

"""A hostile REMOTE post, sent by a real peer (Fedify) into one of our groups, is inert in a real
browser (issue 5, "the HTML of a hostile remote post rendered safely in the browser pages").

The local side of the same check (hostile names and Markdown typed by our own members) is in
tests/browser/test_browser_pages.py; here the HTML arrives over ActivityPub, signed by the peer,
and goes through the sanitizer (one allow-list) before Chromium renders the group page and the thread.
"""

from __future__ import annotations

import re

import pytest

from tests.browser.test_browser_pages import assert_inert, chromium, dump_dom
from tests.interop.harness import ServerProcess, unique_name

pytestmark = [pytest.mark.interop, pytest.mark.browser]

HOSTILE_HTML = (
    "<p>Who is in for the ridge walk?</p>"
    "<script>document.title='pwned'</script>"
    "<img src=x onerror=\"document.title='pwned'\">"
    "<p><a href=\"javascript:document.title='pwned'\">tickets</a> "
    '<a href="https://example.org/map" onclick="document.title=\'pwned\'" style="position:fixed">map</a></p>'
    "<iframe src=\"javascript:parent.document.title='pwned'\"></iframe>"
    "<svg><animate onbegin=\"document.title='pwned'\"/></svg>"
    '<form action="https://evil.example/"><input name=password></form>'
)


def test_hostile_remote_post_is_inert_in_chromium(server: ServerProcess, start_fedify, tmp_path):
    chromium()  # skip (or fail under FEDINET_REQUIRE_BROWSER=1) before starting a peer
    owner, group = unique_name("org"), unique_name("hikers")
    server.create_user(owner)
    created = server.cli("group", "create", group, "--owner", owner)
    assert created.returncode == 0, created.stderr
    handle = server.handle(group)
    peer = start_fedify(actors=("mallory",))
    since = peer.mark()
    follow = peer.follow(handle)  # open group: following makes a member
    peer.wait(type="Accept", object_id=follow["follow_id"], since=since)
    since = peer.mark()
    note = peer.note(handle, HOSTILE_HTML, name="Ridge walk <script>document.title='pwned'</script>")
    peer.wait(type="Announce", object_id=note["note_id"], since=since)  # accepted and shared

    group_dom = dump_dom(tmp_path / "profile", server.url(f"/g/{group}"))
    assert "</html>" in group_dom, group_dom[:500]
    assert_inert(group_dom)
    thread = re.search(rf'href="(/g/{group}/t/\d+)"', group_dom)
    assert thread, group_dom[:3000]
    thread_dom = dump_dom(tmp_path / "profile", server.url(thread.group(1)))
    assert_inert(thread_dom)
    assert "Who is in for the ridge walk?" in thread_dom  # the harmless part is shown
    assert 'href="https://example.org/map"' in thread_dom  # a real link survives …
    for dom in (group_dom, thread_dom):
        assert "<iframe" not in dom and "<svg" not in dom and '<form action="https://evil' not in dom
        assert "position:fixed" not in dom  # … without its styles or handlers

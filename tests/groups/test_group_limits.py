"""Anti-spam in groups (issue 5 §4): posts into groups share the member's posting budget, and group
invitations have their own budget; the N+1th inside the window gets 429 with Retry-After."""

from __future__ import annotations

import pytest

from fediverse_net.db.models import GroupPost, Membership
from tests.groups.conftest import member, post_form

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings(settings):
    return settings.with_(rate_limit_post="2/5m", rate_limit_invite="2/1h")


async def test_posts_into_a_group_are_limited_per_member(alice, hikers, browsers):
    web = await browsers("alice")
    answers = [(await post_form(web, "/g/hikers/post", {"content": f"walk {i}"})) for i in range(3)]
    assert [a.status_code for a in answers] == [303, 303, 429]
    assert int(answers[2].headers["retry-after"]) > 0 and "Too many posts" in answers[2].text
    assert await GroupPost.filter(group=hikers).count() == 2


async def test_group_invitations_are_limited_per_member(settings, alice, hikers, browsers):
    for handle in ("bob", "carol", "dave"):
        await member(settings, handle)
    web = await browsers("alice")
    answers = [
        await post_form(web, "/g/hikers/invite", {"handle": handle}) for handle in ("bob", "carol", "dave")
    ]
    assert [a.status_code for a in answers] == [303, 303, 429]
    assert int(answers[2].headers["retry-after"]) > 0
    assert await Membership.filter(group=hikers, state="invited").count() == 2

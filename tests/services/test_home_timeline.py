"""The home timeline query (services/timeline.py `home_notes`, benchmark B12).

It reads each source's newest notes only (per-author top-N from the index, LATERAL on
PostgreSQL, a date bound on SQLite). These tests pin what it returns: the same notes, in the same
order, page by page, as the plain definition — one ORM query over everything — on mixed data
with ties, every visibility, pending follows, suspended and deleted authors, and group posts.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from tortoise.expressions import Q, Subquery

from fediverse_net.db.models import Account, Actor, Follow, GroupPost, Membership, Note
from fediverse_net.services import profiles, timeline
from tests.services import follow, local_actor, remote_actor

pytestmark = pytest.mark.anyio

START = datetime(2026, 9, 1, 10, tzinfo=UTC)
VISIBILITIES = ("public", "unlisted", "followers", "direct")


async def reference_page(me: int, offset: int, limit: int) -> list[int]:
    """The definition of the home timeline as one ORM query (what `home_notes` replaced)."""
    followed = Subquery(Follow.filter(follower_id=me, state="accepted").values("followee_id"))
    joined = Subquery(Membership.filter(member_id=me, state="accepted").values("group_id"))
    shared = Subquery(
        GroupPost.filter(
            Q(group_id__in=followed) | Q(group_id__in=joined), state="accepted", members_only=False
        ).values("note_id")
    )
    in_groups = Q(id__in=shared) & Q(visibility__in=["public", "unlisted"])
    query = (
        Note.filter(Q(author_id=me) | (Q(author_id__in=followed) & ~Q(visibility="direct")) | in_groups)
        .filter(author__deleted_at=None, author__suspended=False)
        .order_by("-published", "-id")
    )
    return [note.id for note in await query.offset(offset).limit(limit)]


async def page_ids(me: int, offset: int, limit: int) -> list[int]:
    return [note.id for note in await timeline.home_notes(me, offset=offset, limit=limit)]


_serial = iter(range(1, 1_000_000))


async def note(author: Actor, minutes: float, visibility: str = "public") -> Note:
    ap_id = f"{author.ap_id}/notes/{next(_serial)}"
    return await Note.create(
        ap_id=ap_id,
        author=author,
        content="<p>x</p>",
        visibility=visibility,
        published=START + timedelta(minutes=minutes),
    )


async def group_actor(name: str) -> Actor:
    return await remote_actor("groups.example", name, type="Group")


@pytest.fixture
async def me(db, settings) -> Actor:
    return await local_actor(settings, "reader")


async def test_same_notes_and_order_as_the_definition_on_mixed_data(me):
    rng = random.Random(5)
    followed = [await remote_actor("a.example") for _ in range(6)]
    for actor in followed:
        await follow(me, actor)
    pending = await remote_actor("b.example")
    await follow(me, pending, state="pending")
    stranger = await remote_actor("c.example")
    suspended = await remote_actor("d.example", suspended=True)
    deleted = await remote_actor("e.example", deleted_at=START)
    for actor in (suspended, deleted):
        await follow(me, actor)
    followed_group, joined_group, other_group = [await group_actor(n) for n in ("walkers", "chess", "knit")]
    await follow(me, followed_group)
    await Membership.create(group=joined_group, member=me, state="accepted")
    await Membership.create(group=other_group, member=me, state="pending")
    authors = [me, *followed, pending, stranger, suspended, deleted]
    notes = []
    for _ in range(260):
        # Whole minutes from a small range: many notes share `published` (ties go by id).
        author = rng.choice(authors[:4]) if rng.random() < 0.5 else rng.choice(authors)
        notes.append(await note(author, rng.randrange(120), rng.choice(VISIBILITIES)))
    for carried in rng.sample(notes, 80):
        group = rng.choice((followed_group, joined_group, other_group))
        await GroupPost.create(
            group=group,
            note=carried,
            state=rng.choice(("accepted", "accepted", "removed", "held")),
            members_only=rng.random() < 0.25,
        )
    everything = await reference_page(me.id, 0, 10_000)
    assert len(everything) > 100  # the data gives the sources something to do
    assert await page_ids(me.id, 0, 10_000) == everything
    for limit in (1, 3, 7, 21):
        for offset in range(0, len(everything) + limit, limit):
            assert await page_ids(me.id, offset, limit) == everything[offset : offset + limit], (
                offset,
                limit,
            )


async def test_a_prolific_author_does_not_push_others_off_later_pages(me):
    busy, quiet = await remote_actor("a.example"), await remote_actor("b.example")
    await follow(me, busy)
    await follow(me, quiet)
    busy_notes = [await note(busy, minutes) for minutes in range(40)]  # minutes 0..39
    quiet_notes = [await note(quiet, minutes + 0.5) for minutes in (1, 3, 35)]
    newest_first = sorted([*busy_notes, *quiet_notes], key=lambda n: (n.published, n.id), reverse=True)
    expected = [n.id for n in newest_first]
    # Pages 3 to 5 hold busy's older notes with quiet's 3.5- and 1.5-minute notes among them:
    # each author's newest `offset + limit` notes must be read, not just the newest `limit`.
    assert expected.index(quiet_notes[1].id) >= 30
    for offset in (20, 30, 40):
        assert await page_ids(me.id, offset, 10) == expected[offset : offset + 10]


async def test_visibility_rules(me):
    friend, stranger = await remote_actor("a.example"), await remote_actor("b.example")
    await follow(me, friend)
    mine = [await note(me, 1, v) for v in VISIBILITIES]
    theirs = {v: await note(friend, 2, v) for v in VISIBILITIES}
    await note(stranger, 3)
    ids = await page_ids(me.id, 0, 50)
    assert set(ids) == {n.id for n in mine} | {theirs[v].id for v in ("public", "unlisted", "followers")}


async def test_group_posts_of_followed_and_joined_groups_only(me):
    walkers, chess, knit = [await group_actor(n) for n in ("walkers", "chess", "knit")]
    await follow(me, walkers)
    await Membership.create(group=chess, member=me, state="accepted")
    await Membership.create(group=knit, member=me, state="banned")
    author = await remote_actor("a.example")
    shown = [await note(author, 1), await note(author, 2, "unlisted")]
    await GroupPost.create(group=walkers, note=shown[0])
    await GroupPost.create(group=chess, note=shown[1])
    hidden = [
        await note(author, 3),
        await note(author, 4),
        await note(author, 5),
        await note(author, 6, "followers"),
    ]
    await GroupPost.create(group=knit, note=hidden[0])
    await GroupPost.create(group=walkers, note=hidden[1], members_only=True)
    await GroupPost.create(group=chess, note=hidden[2], state="removed")
    await GroupPost.create(group=walkers, note=hidden[3])
    # Carried by two groups and written by someone followed: listed once.
    await follow(me, author)
    twice = await note(author, 7)
    await GroupPost.create(group=walkers, note=twice)
    await GroupPost.create(group=chess, note=twice)
    ids = await page_ids(me.id, 0, 50)
    assert ids == [twice.id, hidden[3].id, hidden[2].id, hidden[1].id, hidden[0].id, shown[1].id, shown[0].id]
    await Follow.filter(follower=me, followee=author).delete()  # only what the groups carry is left
    assert await page_ids(me.id, 0, 50) == [twice.id, shown[1].id, shown[0].id]


async def test_suspending_or_deleting_an_author_hides_their_notes(me):
    friend = await remote_actor("a.example")
    await follow(me, friend)
    written = await note(friend, 1)
    assert await page_ids(me.id, 0, 20) == [written.id]
    await Actor.filter(id=friend.id).update(suspended=True)
    assert await page_ids(me.id, 0, 20) == []
    await Actor.filter(id=friend.id).update(suspended=False, deleted_at=START)
    assert await page_ids(me.id, 0, 20) == []


async def test_home_timeline_pages_and_has_next(db, settings):
    from fediverse_net.services.members import NewMember, create_member

    account = await create_member(settings, NewMember(handle="pat", password="correct horse"))
    pat = await Actor.get(id=account.actor_id)
    friend = await remote_actor("a.example")
    await follow(pat, friend)
    written = [await note(friend if i % 2 else pat, i) for i in range(45)]
    account = await Account.get(id=account.id)
    first = await profiles.home_timeline(account, 1)
    assert [n.id for n in first.notes] == [n.id for n in reversed(written)][:20] and first.has_next
    assert all(n.author.id in (pat.id, friend.id) for n in first.notes)  # authors come fetched
    third = await profiles.home_timeline(account, 3)
    assert [n.id for n in third.notes] == [n.id for n in reversed(written)][40:] and not third.has_next
    assert (await profiles.home_timeline(account, 4)).notes == []

"""The group directory's search (services/groups/views.py `directory`, db/group_search.py).

The text and city filters run on a trigram index kept in sync by triggers (FTS5 on SQLite,
pg_trgm on PostgreSQL); these tests check it finds what a plain case-insensitive substring test
finds, follows every change to a group, and treats what people type as text, never as syntax.
"""

from __future__ import annotations

import pytest
from tortoise import connections

from fediverse_net.db import group_search
from fediverse_net.db.models import Actor, Group, Membership
from fediverse_net.services.groups.core import GroupInput
from fediverse_net.services.groups.moderation import update_group
from fediverse_net.services.groups.views import directory

pytestmark = pytest.mark.anyio


async def names(text: str = "", tag: str = "", city: str = "") -> list[str]:
    return [entry.group.name for entry in await directory(text, tag, city)]


@pytest.fixture
async def three(make_group):
    await make_group("hikers", name="Hikers of Example Valley", tags="hiking, outdoors", city="Leipzig")
    await make_group(
        "gamers",
        name="Board games",
        description="Weekly **Catan** evenings at the Rösti café.",
        tags="games",
        city="Bad Düben",
    )
    await make_group("gardens", name="Community gardening", tags="garden", city="Leipzig-Süd")


async def test_text_anywhere_in_name_handle_or_description_any_case(three):
    assert await names("HIK") == ["Hikers of Example Valley"]  # start of a word, other case
    assert await names("arden") == ["Community gardening"]  # inside a word
    assert await names("catan") == ["Board games"]  # the description
    assert await names("gamers") == ["Board games"]  # the handle
    assert await names("gamers weekly") == ["Board games"]  # across handle and description
    assert await names("rösti") == ["Board games"]  # not only ASCII
    assert await names("e") == ["Board games", "Community gardening", "Hikers of Example Valley"]
    assert await names("va") == ["Hikers of Example Valley"]  # shorter than a trigram
    assert await names("zebra") == []


async def test_city_substring_and_exact_tags(three):
    assert await names(city="leipzig") == ["Community gardening", "Hikers of Example Valley"]
    assert await names(city="DÜBEN") == ["Board games"]
    assert await names(city="üd") == ["Community gardening"]
    assert await names(tag="#Garden") == ["Community gardening"]
    assert await names(tag="gard") == []  # a tag is matched whole, as before
    assert await names(tag="outdoors") == ["Hikers of Example Valley"]
    assert await names(tag="hiking|outdoors") == []
    assert await names("o", tag="hiking", city="leip") == ["Hikers of Example Valley"]
    assert await names("community", city="düben") == []


async def test_what_people_type_is_text_not_syntax(make_group):
    await make_group("fun", name='100% "fun" club_1 \\o/')
    await make_group("plain", name="1000 fun club11")
    assert await names("100%") == ['100% "fun" club_1 \\o/']
    assert await names("%") == ['100% "fun" club_1 \\o/']
    assert await names("_") == ['100% "fun" club_1 \\o/']
    assert await names('"fun"') == ['100% "fun" club_1 \\o/']
    assert await names("\\o/") == ['100% "fun" club_1 \\o/']
    assert await names("fun AND club") == []
    assert await names('" OR "') == []
    assert await names("club*") == []
    assert await names("*") == []


async def test_index_follows_edits_renames_and_removals(three, deps, alice):
    hikers = await Actor.get(handle="hikers")
    form = GroupInput(
        name="Ramblers", description="Long walks by the river", tags="walking", city="Halle", questions=[]
    )
    await update_group(deps, hikers, alice, form)
    assert await names("hikers") == ["Ramblers"]  # still found by its handle
    assert await names("of example") == []
    assert await names("river") == ["Ramblers"]
    assert await names(city="halle") == ["Ramblers"]
    assert await names(city="leipzig") == ["Community gardening"]
    assert await names(tag="walking") == ["Ramblers"] and await names(tag="hiking") == []
    await Actor.filter(id=hikers.id).update(suspended=True)
    assert await names("river") == []
    await Actor.filter(id=hikers.id).update(suspended=False)
    await Group.filter(actor_id=hikers.id).update(visibility="unlisted")
    assert await names("river") == []
    gamers = await Actor.get(handle="gamers")
    await Actor.filter(id=gamers.id).update(deleted_at=gamers.created_at)
    assert await names("games") == []
    await Group.filter(actor_id=gamers.id).delete()
    rows = await connections.get("default").execute_query_dict("SELECT COUNT(*) AS n FROM group_search")
    assert rows[0]["n"] == 2


async def test_every_group_is_searched_and_member_counts_are_right(make_group, settings, alice):
    # More groups than the old code looked at (it filtered the first 500 by name in Python).
    first = await Actor.all().count() + 1000
    actors = [
        Actor(
            id=first + i,
            ap_id=f"{settings.origin}/groups/bulk{i}",
            type="Group",
            local=True,
            username=f"bulk{i}",
            handle=f"bulk{i}",
            domain=settings.domain,
            name=f"Aaa group {i:04d}",
            inbox_url=f"{settings.origin}/groups/bulk{i}/inbox",
        )
        for i in range(600)
    ]
    await Actor.bulk_create(actors)
    await Group.bulk_create([Group(actor_id=a.id, description="A quiet group.") for a in actors])
    await make_group("zz", name="Zz last by name", description="Needle in the haystack", city="Lyon")
    zz = await Actor.get(handle="zz")
    for member in actors[:3]:  # any actors will do as members
        await Membership.create(group_id=zz.id, member_id=member.id, state="accepted")
    await Membership.create(group_id=zz.id, member_id=actors[3].id, state="pending")
    found = await directory("needle")
    assert [(e.group.name, e.members, e.settings.city) for e in found] == [("Zz last by name", 4, "Lyon")]
    everything = await directory()
    assert len(everything) == 200  # at most 200 listed, by name
    assert [e.group.name for e in everything] == [f"Aaa group {i:04d}" for i in range(200)]
    assert (await directory("group 0599"))[0].group.username == "bulk599"


async def test_install_is_idempotent_and_fills_existing_groups(three):
    conn = connections.get("default")
    await conn.execute_query("DELETE FROM group_search")
    assert await names("hik") == []
    await group_search.install(conn)
    await group_search.install(conn)
    assert await names("hik") == ["Hikers of Example Valley"]
    rows = await conn.execute_query_dict("SELECT COUNT(*) AS n FROM group_search")
    assert rows[0]["n"] == 3

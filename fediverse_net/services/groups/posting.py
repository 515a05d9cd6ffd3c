"""Posting into groups and the group's redistribution (protocol §2.7 "our group algorithm", §5.11).

* A local member posts a thread or a reply: `Create{Note}` by the member (`audience` = group,
  the group in `cc` and as a `Mention`), then the group announces it.
* A remote member or a Mastodon user addresses or mentions the group; the group checks: group
  addressed; object public/unlisted (or addressed to the members collection, from a member);
  author allowed (member / follower / moderator per the group's setting; never banned); thread
  not locked. Accepted posts are stored and announced; refused ones are not stored, the sender
  still gets 202, and the refusal is written to the moderation log for moderators.
* The group announces in BOTH forms (Lemmy's `announce.rs` does the same): `Announce{object id}`
  for Mastodon/Misskey/GoToSocial and `Announce{the activity as received}` (FEP-1b12) for
  Lemmy/Mbin/PieFed, signed by the group, to its followers and members (shared inboxes collapse).
  Members-only posts go to members only, addressed to the members collection.
* Top-level posts without a `name` take their title from their first line (as Lemmy does).
"""

from __future__ import annotations

from typing import Any, Final

from tortoise.transactions import in_transaction

from fediverse_net.activitypub import builders
from fediverse_net.activitypub.parse import JSON, get_id, get_type, ids_of
from fediverse_net.activitypub.sanitize import plain_text, truncate
from fediverse_net.activitypub.vocab import AS_CONTEXT, PUBLIC, is_public
from fediverse_net.db.models import Actor, Group, GroupPost, Membership, Note
from fediverse_net.deps import Deps
from fediverse_net.services.errors import Forbidden, NotFound, ServiceError
from fediverse_net.services.groups.core import (
    MODERATOR_ROLES,
    audience,
    is_follower,
    log,
    membership_of,
    settings_of,
)
from fediverse_net.services.markup import render_markdown
from fediverse_net.services.notes import MAX_SOURCE, followers_of, note_object, store_remote_note
from fediverse_net.services.outbox import record_outgoing
from fediverse_net.urls import new_token

MAX_TITLE: Final = 200
MAX_GROUPS_PER_POST: Final = 5


def members_url(group: Actor) -> str:
    return f"{group.ap_id}/members"


def title_from(text: str, group: Actor | None = None) -> str:
    """The first non-empty line of a post's text, without a leading mention of the group."""
    for line in text.splitlines():
        line = line.strip()
        if group is not None:
            for mention in (f"@{group.username}@{group.domain}", f"@{group.username}"):
                if line.lower().startswith(mention.lower()):
                    line = line[len(mention) :].strip(" :,")
        if line:
            return truncate(line, MAX_TITLE)
    return ""


async def posting_refusal(group: Actor, settings: Group | None, author: Actor) -> str | None:
    """Why `author` may not post in `group` (None: allowed)."""
    row = await membership_of(group, author)
    if row is not None and row.state == "banned":
        return "banned from the group"
    member = row is not None and row.state == "accepted"
    posting = settings.posting if settings is not None else "members"
    if posting == "moderators":
        allowed = member and row is not None and row.role in MODERATOR_ROLES
        return None if allowed else "only moderators can post"
    if posting == "followers" and (member or await is_follower(group, author)):
        return None
    return None if member else "not a member of the group"


async def waits_for_review(group: Actor, settings: Group | None, author: Actor) -> bool:
    """Is this one of the author's first posts, which the group's moderators see before it is shared?

    Groups that ask for it (`Group.review_first_posts`) hold each member's first N posts; moderators
    are never held. A held post is stored but not announced until a moderator approves it.
    """
    limit = settings.review_first_posts if settings is not None else 0
    if limit <= 0:
        return False
    row = await membership_of(group, author)
    if row is not None and row.state == "accepted" and row.role in MODERATOR_ROLES:
        return False
    shared = await GroupPost.filter(group_id=group.id, note__author_id=author.id, state="accepted").count()
    return shared < limit


async def is_held(group: Actor, note: Note) -> bool:
    return await GroupPost.filter(group_id=group.id, note_id=note.id, state="held").exists()


async def _hold(group: Actor, author: Actor, note: Note) -> None:
    excerpt = truncate(plain_text(note.content)[:2000], 300)
    await log(group, "post_held", target=note.ap_id, details={"author": author.ap_id, "excerpt": excerpt})


async def thread_of(group: Actor, parent: Note) -> GroupPost | None:
    return await GroupPost.filter(group_id=group.id, note_id=parent.id).first()


# --- the group announces ----------------------------------------------------------------------------


def _announce(deps: Deps, group: Actor, obj: Any, to: list[str], cc: list[str]) -> JSON:
    """An `Announce` by the group (`audience` = the group) of an object id or an activity."""
    return {
        "@context": AS_CONTEXT,
        "id": f"{group.ap_id}/activities/{new_token()}",
        "type": "Announce",
        "actor": group.ap_id,
        "published": builders.iso(deps.clock()),
        "to": to,
        "cc": cc,
        "audience": group.ap_id,
        "object": obj,
    }


async def announce(deps: Deps, group: Actor, post: GroupPost, note: Note, activity: JSON | None) -> None:
    """Both Announce forms, by the group, to its remote followers and members (protocol §5.11).

    Local followers and members read the post from the GroupPost row; nothing is queued for them.
    """
    author = await note.author
    members_only = post.members_only
    recipients = [a for a in await audience(group, members_only=members_only) if not a.local]
    if not author.local and author.id not in {a.id for a in recipients}:
        recipients.append(author)  # Guppe and Lemmy address (and deliver to) the original author
    followers = group.followers_url or f"{group.ap_id}/followers"
    if members_only:
        to, cc = [members_url(group)], [author.ap_id]
    else:
        to, cc = [PUBLIC], [followers, author.ap_id]
    ids = []
    forms: list[Any] = [note.ap_id]
    if activity is not None:
        forms.append(activity)
    for obj in forms:
        body = _announce(deps, group, obj, to, cc)
        await record_outgoing(deps, actor=group, activity=body, recipients=recipients)
        ids.append(body["id"])
    post.announce_ids = [*post.announce_ids, *ids]
    await post.save(update_fields=["announce_ids"])


def undo_boost(group: Actor, post: GroupPost, note_ap_id: str) -> JSON | None:
    """`Undo{Announce}` of the group's Mastodon-form boost of a post (None: it was never boosted)."""
    if not post.announce_ids:
        return None
    announce_id = post.announce_ids[0]
    return builders.undo(
        id=f"{announce_id}#undo",
        actor=group.ap_id,
        object={"id": announce_id, "type": "Announce", "actor": group.ap_id, "object": note_ap_id},
        to=[PUBLIC],
    )


async def relay_author_change(deps: Deps, note: Note, activity: JSON, *, as_received: bool) -> None:
    """A remote author edited (`Update`) or deleted (`Delete`) a post our groups carry: each group
    tells its audience, as Lemmy's communities do (FEP-1b12).

    Call it before the note is deleted. `as_received`: the activity came signed by its author, so
    it is announced as is (`Announce{Update|Delete}`, what Lemmy/Mbin/PieFed apply); a relayed copy
    is not (receivers could not trust it). For a Delete, Mastodon-family receivers also get the
    `Undo{Announce}` of the group's boost, so the post leaves their timelines.
    """
    carried = GroupPost.filter(note_id=note.id, group__local=True, state="accepted")
    for post in await carried.select_related("group"):
        group = post.group
        recipients = [a for a in await audience(group, members_only=post.members_only) if not a.local]
        if post.members_only:
            to, cc = [members_url(group)], []
        else:
            to, cc = [PUBLIC], [group.followers_url or f"{group.ap_id}/followers"]
        if as_received:
            body = _announce(deps, group, activity, to, cc)
            await record_outgoing(deps, actor=group, activity=body, recipients=recipients)
        if get_type(activity) == "Delete" and (undo := undo_boost(group, post, note.ap_id)) is not None:
            await record_outgoing(deps, actor=group, activity=undo, recipients=recipients)


# --- local members post -----------------------------------------------------------------------------


def _group_note_audience(group: Actor, author: Actor, members_only: bool) -> tuple[list[str], list[str]]:
    if members_only:
        return [members_url(group)], [group.ap_id]
    author_followers = author.followers_url or f"{author.ap_id}/followers"
    followers = group.followers_url or f"{group.ap_id}/followers"
    return [PUBLIC], [group.ap_id, followers, author_followers]


async def _check_parent(group: Actor, parent: Note | None) -> GroupPost | None:
    if parent is None:
        return None
    thread = await thread_of(group, parent)
    if thread is None or thread.state != "accepted":
        raise NotFound("The post you are replying to is not in this group.")
    root = thread
    if thread.thread_root is not None:
        root_note = await Note.filter(ap_id=thread.thread_root).first()
        root = (await thread_of(group, root_note) if root_note else None) or thread
    if root.locked or thread.locked:
        raise Forbidden("This thread is locked: no new replies.")
    return thread


async def publish_in_group(
    deps: Deps,
    group: Actor,
    author: Actor,
    source: str,
    *,
    title: str = "",
    members_only: bool = False,
    parent: Note | None = None,
) -> Note:
    """A local member posts a thread (or a reply) in a group: the note, its Create, the Announces."""
    source = source.strip()
    if not source:
        raise ServiceError("Write something first.")
    if len(source) > MAX_SOURCE:
        raise ServiceError(f"A post may have at most {MAX_SOURCE} characters.")
    settings = await settings_of(group)
    if group.local:
        if (why := await posting_refusal(group, settings, author)) is not None:
            raise Forbidden(f"You cannot post in this group: {why}.")
    else:
        row = await membership_of(group, author)
        if (row is None or row.state != "accepted") and not await is_follower(group, author):
            raise Forbidden("Join or follow this group first.")
        if members_only:
            raise ServiceError("Members-only posts are for groups on this server.")
    thread = await _check_parent(group, parent)
    if thread is not None:
        members_only = thread.members_only
    held = group.local and await waits_for_review(group, settings, author)
    name = None
    if parent is None:
        name = truncate(title.strip(), MAX_TITLE) if title.strip() else title_from(source, group)
    to, cc = _group_note_audience(group, author, members_only)
    token = new_token()
    mention = {"type": "Mention", "href": group.ap_id, "name": f"@{group.username}@{group.domain}"}
    recipients = [] if members_only else await followers_of(author)
    if not group.local:
        recipients.append(group)
    if parent is not None:
        parent_author = await parent.author
        if parent_author.id != author.id and not parent_author.local:
            cc.append(parent_author.ap_id)
            recipients.append(parent_author)
    async with in_transaction():
        note = await Note.create(
            ap_id=deps.urls.note(token),
            author=author,
            local=True,
            name=name,
            content=render_markdown(source),
            source=source,
            url=f"{author.url}/notes/{token}" if author.url else None,
            in_reply_to=parent.ap_id if parent else None,
            visibility="members" if members_only else "public",
            to=to,
            cc=cc,
            published=deps.clock(),
        )
        obj = note_object(note, author)
        obj["audience"] = group.ap_id
        obj["tag"] = [mention]
        note.document = obj
        await note.save(update_fields=["document"])
        create = builders.create(id=deps.urls.activity(token), actor=author.ap_id, object=obj)
        await record_outgoing(deps, actor=author, activity=create, recipients=recipients)
        if group.local:
            post = await GroupPost.create(
                group=group,
                note=note,
                members_only=members_only,
                thread_root=(thread.thread_root or parent.ap_id) if thread and parent else None,
                activity=create,
                state="held" if held else "accepted",
            )
            if held:
                await _hold(group, author, note)
            else:
                await announce(deps, group, post, note, create)
    return note


# --- remote posts into our groups (inbox side) ----------------------------------------------------


def _addressed_ids(activity: JSON, document: JSON) -> list[str]:
    ids: list[str] = []
    for source in (document, activity):
        for key in ("to", "cc", "audience"):
            ids += ids_of(source.get(key), limit=100)
    tags = document.get("tag")
    if isinstance(tags, list):
        ids += [h for t in tags[:50] if isinstance(t, dict) and (h := get_id(t.get("href")))]
    return ids


async def _groups_for(deps: Deps, activity: JSON, document: JSON) -> list[Actor]:
    """Our groups this object is for: addressed/mentioned, or a reply inside one of their threads."""
    addressed = _addressed_ids(activity, document)
    wanted = {
        a.removesuffix("/members").removesuffix("/followers") for a in addressed if deps.urls.is_local(a)
    }
    groups = []
    if wanted:
        groups = await Actor.filter(
            ap_id__in=list(wanted)[:50], type="Group", local=True, deleted_at=None
        ).limit(MAX_GROUPS_PER_POST)
    parent_id = get_id(document.get("inReplyTo"))
    if not groups and parent_id:
        # A reply to a thread a group carries, carrying `audience` = that group (FEP-1b12).
        audience_ids = set(ids_of(document.get("audience")) + ids_of(activity.get("audience")))
        links = await GroupPost.filter(note__ap_id=parent_id, group__local=True).select_related("group")
        groups = [link.group for link in links if link.group.ap_id in audience_ids]
    return list(groups)


def _is_open(document: JSON) -> bool:
    return any(is_public(a) for key in ("to", "cc") for a in ids_of(document.get(key), limit=200))


async def _refuse(group: Actor, author: Actor, document: JSON, reason: str) -> None:
    excerpt = truncate(plain_text(str(document.get("content") or ""))[:2000], 300)
    await log(
        group,
        "post_refused",
        target=str(document.get("id"))[:512],
        reason=reason,
        details={"author": author.ap_id, "excerpt": excerpt},
    )


async def _parent_thread(group: Actor, document: JSON) -> tuple[GroupPost | None, str | None]:
    """(the GroupPost of the parent, the refusal reason) for a reply; (None, None) for a thread."""
    parent_id = get_id(document.get("inReplyTo"))
    if not parent_id:
        return None, None
    parent = await Note.filter(ap_id=parent_id).first()
    thread = await thread_of(group, parent) if parent else None
    if thread is None:
        return None, None  # replying to something the group does not carry: a new thread here
    root = thread
    if thread.thread_root:
        root_note = await Note.filter(ap_id=thread.thread_root).first()
        root = (await thread_of(group, root_note) if root_note else None) or thread
    if thread.state != "accepted" or root.state != "accepted":
        return thread, "the thread was removed"
    if thread.locked or root.locked:
        return thread, "the thread is locked"
    return thread, None


async def _accept_one(
    deps: Deps, group: Actor, author: Actor, activity: JSON, document: JSON, *, trusted_activity: bool
) -> bool:
    settings = await settings_of(group)
    members_only = members_url(group) in ids_of(document.get("to")) + ids_of(document.get("cc"))
    if not _is_open(document) and not members_only:
        await _refuse(group, author, document, "not public (followers-only or direct posts are never shared)")
        return False
    if (why := await posting_refusal(group, settings, author)) is not None:
        await _refuse(group, author, document, why)
        return False
    if (
        members_only
        and not await Membership.filter(group_id=group.id, member_id=author.id, state="accepted").exists()
    ):
        await _refuse(group, author, document, "members-only post from a non-member")
        return False
    thread, why = await _parent_thread(group, document)
    if why is not None:
        await _refuse(group, author, document, why)
        return False
    held = await waits_for_review(group, settings, author)
    async with in_transaction():
        note = await store_remote_note(deps, author, document)
        if note is None:
            return False
        if thread is None and not note.name:
            note.name = title_from(plain_text(note.content), group) or None
            await note.save(update_fields=["name"])
        post, created = await GroupPost.get_or_create(
            group=group,
            note=note,
            defaults={
                "members_only": members_only or (thread.members_only if thread else False),
                "thread_root": (thread.thread_root or note.in_reply_to) if thread else None,
                "activity": activity if trusted_activity else None,
                "state": "held" if held else "accepted",
            },
        )
        if created and held:
            await _hold(group, author, note)
        elif created:
            await announce(deps, group, post, note, post.activity)
    return True


async def receive_create(
    deps: Deps, author: Actor, activity: JSON, document: JSON, *, trusted_activity: bool
) -> bool | None:
    """A remote Create for our groups. None: not for a group; True: accepted by one; False: refused.

    `document` was checked by the Create handler (origin, attributedTo == actor, not tombstoned).
    `trusted_activity`: the activity itself came signed by its actor (so it may be re-announced as is).
    """
    if get_type(document) not in ("Note", "Article", "Page", "Question"):
        return None
    groups = await _groups_for(deps, activity, document)
    if not groups:
        return None
    accepted = False
    for group in groups:
        accepted |= await _accept_one(
            deps, group, author, activity, document, trusted_activity=trusted_activity
        )
    return accepted


# --- announces from remote groups we follow (our members read them) --------------------------------


async def cares_about(group: Actor) -> bool:
    """Does one of ours follow, or belong to, this remote group?"""
    if await Membership.filter(group_id=group.id, member__local=True, state="accepted").exists():
        return True
    from fediverse_net.db.models import Follow

    return await Follow.filter(followee_id=group.id, follower__local=True, state="accepted").exists()


async def record_shared(group: Actor, note: Note) -> None:
    """Remember that a remote group shared `note` (home timelines show it to its followers)."""
    await GroupPost.get_or_create(group=group, note=note, defaults={"state": "accepted"})

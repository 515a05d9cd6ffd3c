"""Groups (FEP-1b12 communities): settings, memberships, vetting, moderation log, posts.

A group's public face is an `Actor` of type `Group` (local, own key, handle in the members'
namespace). `Group` holds the settings of our own groups (1:1 with the actor). Memberships, posts
and the moderation log point at the group *actor*, so the same tables also record our members'
memberships in remote groups and the posts remote groups shared with us.
"""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model

from fediverse_net.db.models.actors import Actor
from fediverse_net.db.models.social import Note


class Group(Model):
    """Settings of one of our groups."""

    id = fields.BigIntField(primary_key=True)
    actor: fields.OneToOneRelation[Actor] = fields.OneToOneField(
        "models.Actor", related_name="group_settings", on_delete=fields.CASCADE
    )
    actor_id: int
    join_mode = fields.CharField(max_length=16, default="open")  # open | approval | invite
    visibility = fields.CharField(max_length=16, default="public")  # public | unlisted
    posting = fields.CharField(max_length=16, default="members")  # members | followers | moderators
    # A Follow (the only thing Mastodon can send) also makes a member, in open groups.
    follow_is_join = fields.BooleanField(default=True)
    vouches_needed = fields.IntField(default=0)  # 0: vouching is off
    # Each member's first N posts wait for a moderator before the group shares them (0: off).
    # db_default: the column is added to existing rows by migration 0002 (NOT NULL needs a value).
    review_first_posts = fields.IntField(default=0, db_default=0)
    description = fields.TextField(default="")  # Markdown source; Actor.summary holds the HTML
    rules = fields.TextField(default="")  # Markdown source
    tags = fields.JSONField[Any](default=list)
    city = fields.CharField(max_length=128, default="", db_index=True)
    area = fields.CharField(max_length=128, default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "groups"


class Membership(Model):
    """`member` in the group actor `group`: a role and a state, never the same as following."""

    id = fields.BigIntField(primary_key=True)
    group: fields.ForeignKeyRelation[Actor] = fields.ForeignKeyField(
        "models.Actor", related_name="group_memberships", on_delete=fields.CASCADE
    )
    group_id: int
    member: fields.ForeignKeyRelation[Actor] = fields.ForeignKeyField(
        "models.Actor", related_name="memberships", on_delete=fields.CASCADE
    )
    member_id: int
    role = fields.CharField(max_length=16, default="member")  # admin | moderator | member
    state = fields.CharField(max_length=16, default="pending")  # pending | accepted | banned | invited
    answers = fields.JSONField[Any](default=list)  # [{"question": …, "answer": …}]
    join_ap_id = fields.CharField(max_length=512, null=True)  # the Join (or Follow) that asked
    join_activity = fields.JSONField[Any](null=True)  # as received, embedded in Accept/Reject
    reason = fields.TextField(default="")  # why refused or banned
    created_at = fields.DatetimeField(auto_now_add=True)
    decided_at = fields.DatetimeField(null=True)

    class Meta:
        table = "group_memberships"
        unique_together = (("group", "member"),)
        # Member counts of a group (directory, group page) and the groups a member belongs to
        # (home timeline) read these without visiting rows.
        indexes = (("group_id", "state"), ("member_id", "state"))


class JoinQuestion(Model):
    """A question people answer when they ask to join."""

    id = fields.BigIntField(primary_key=True)
    group: fields.ForeignKeyRelation[Actor] = fields.ForeignKeyField(
        "models.Actor", related_name="join_questions", on_delete=fields.CASCADE
    )
    group_id: int
    position = fields.IntField(default=0)
    text = fields.CharField(max_length=500)

    class Meta:
        table = "group_join_questions"


class Vouch(Model):
    """A member vouches for a pending request, enough vouches approve it."""

    id = fields.BigIntField(primary_key=True)
    membership: fields.ForeignKeyRelation[Membership] = fields.ForeignKeyField(
        "models.Membership", related_name="vouches", on_delete=fields.CASCADE
    )
    membership_id: int
    voucher: fields.ForeignKeyRelation[Actor] = fields.ForeignKeyField(
        "models.Actor", related_name="vouches_given", on_delete=fields.CASCADE
    )
    voucher_id: int
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "group_vouches"
        unique_together = (("membership", "voucher"),)


class TrustedInstance(Model):
    """Join requests from this domain are approved without waiting."""

    id = fields.BigIntField(primary_key=True)
    group: fields.ForeignKeyRelation[Actor] = fields.ForeignKeyField(
        "models.Actor", related_name="trusted_instances", on_delete=fields.CASCADE
    )
    group_id: int
    domain = fields.CharField(max_length=255)

    class Meta:
        table = "group_trusted_instances"
        unique_together = (("group", "domain"),)


class ModLog(Model):
    """What moderators did (and what the group refused), visible to members."""

    id = fields.BigIntField(primary_key=True)
    group: fields.ForeignKeyRelation[Actor] = fields.ForeignKeyField(
        "models.Actor", related_name="modlog", on_delete=fields.CASCADE
    )
    group_id: int
    moderator: fields.ForeignKeyNullableRelation[Actor] = fields.ForeignKeyField(
        "models.Actor", related_name="modlog_entries", on_delete=fields.SET_NULL, null=True
    )
    moderator_id: int | None
    action = fields.CharField(max_length=32)
    target = fields.CharField(max_length=512, default="")
    reason = fields.TextField(default="")
    details = fields.JSONField[Any](default=dict)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:
        table = "group_modlog"


class GroupPost(Model):
    """A note the group carries: posted in one of our groups, or shared by a remote group we follow."""

    id = fields.BigIntField(primary_key=True)
    group: fields.ForeignKeyRelation[Actor] = fields.ForeignKeyField(
        "models.Actor", related_name="group_posts", on_delete=fields.CASCADE
    )
    group_id: int
    note: fields.ForeignKeyRelation[Note] = fields.ForeignKeyField(
        "models.Note", related_name="group_links", on_delete=fields.CASCADE
    )
    note_id: int
    state = fields.CharField(max_length=16, default="accepted")  # accepted | held | removed
    members_only = fields.BooleanField(default=False)
    locked = fields.BooleanField(default=False)
    pinned = fields.BooleanField(default=False)
    thread_root = fields.CharField(max_length=512, null=True, db_index=True)  # None: a thread itself
    activity = fields.JSONField[Any](null=True)  # the Create as received (announced as is)
    announce_ids = fields.JSONField[Any](default=list)  # our Announces of it
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:
        table = "group_posts"
        unique_together = (("group", "note"),)

"""Follow relations, notes (posts) and tombstones."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model

from fediverse_net.db.models.actors import Actor


class Follow(Model):
    """`follower` follows `followee`, pending until the followee's side accepts."""

    id = fields.BigIntField(primary_key=True)
    ap_id = fields.CharField(max_length=512, null=True, unique=True)
    follower: fields.ForeignKeyRelation[Actor] = fields.ForeignKeyField(
        "models.Actor", related_name="following_rel", on_delete=fields.CASCADE
    )
    followee: fields.ForeignKeyRelation[Actor] = fields.ForeignKeyField(
        "models.Actor", related_name="followers_rel", on_delete=fields.CASCADE
    )
    follower_id: int
    followee_id: int
    state = fields.CharField(max_length=16, default="pending")  # pending | accepted
    created_at = fields.DatetimeField(auto_now_add=True)
    accepted_at = fields.DatetimeField(null=True)

    class Meta:
        table = "follows"
        unique_together = (("follower", "followee"),)
        indexes = (("followee_id", "state"),)


class Note(Model):
    """A post or reply, local or remote."""

    id = fields.BigIntField(primary_key=True)
    ap_id = fields.CharField(max_length=512, unique=True)
    author: fields.ForeignKeyRelation[Actor] = fields.ForeignKeyField(
        "models.Actor", related_name="notes", on_delete=fields.CASCADE
    )
    author_id: int
    local = fields.BooleanField(default=False)
    name = fields.CharField(max_length=256, null=True)
    summary = fields.TextField(null=True)
    content = fields.TextField(default="")
    source = fields.TextField(null=True)
    url = fields.CharField(max_length=512, null=True)
    in_reply_to = fields.CharField(max_length=512, null=True, db_index=True)
    visibility = fields.CharField(max_length=16, default="public")  # public|unlisted|followers|direct
    to = fields.JSONField[Any](default=list)
    cc = fields.JSONField[Any](default=list)
    published = fields.DatetimeField(db_index=True)
    updated = fields.DatetimeField(null=True)
    document = fields.JSONField[Any](null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "notes"
        # Outboxes, profiles and timelines read one author's notes newest first, in (published, id)
        # order; with `visibility` in the index the home timeline picks each followed author's
        # newest notes without reading the rows (services/timeline.py, benchmark B12).
        indexes = (("author_id", "published", "id", "visibility"),)


class Tombstone(Model):
    """An id that was deleted and must never be reused nor re-created (protocol §5.4)."""

    ap_id = fields.CharField(max_length=512, primary_key=True)
    former_type = fields.CharField(max_length=32, default="Object")
    deleted_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "tombstones"

"""Instance safety: domain policies, sanctions on remote actors, member blocks/mutes, reports, audit.

Rate-limit buckets are not stored here: they live in memory on `Deps.caches` (services/ratelimit.py).
"""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model

from fediverse_net.db.models.actors import Actor


class DomainBlock(Model):
    """An instance-wide policy for a remote domain and its subdomains (Mastodon's DomainBlock).

    `severity`: `suspend` (refuse everything, 403 at the inbox before any key fetch), `silence`
    (limit: follows of our members need their approval, kept out of public lists) or `noop`
    (only the media/report flags apply).
    """

    id = fields.BigIntField(primary_key=True)
    domain = fields.CharField(max_length=255, unique=True)  # lower-case host, no port
    severity = fields.CharField(max_length=16, default="suspend")  # suspend | silence | noop
    reject_media = fields.BooleanField(default=False)
    reject_reports = fields.BooleanField(default=False)
    public_comment = fields.CharField(max_length=1000, default="")
    private_comment = fields.CharField(max_length=1000, default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "domain_blocks"


class ActorSanction(Model):
    """An admin's decision about one actor: `suspend` (also sets `Actor.suspended`) or `silence`."""

    id = fields.BigIntField(primary_key=True)
    actor: fields.OneToOneRelation[Actor] = fields.OneToOneField(
        "models.Actor", related_name="sanction", on_delete=fields.CASCADE
    )
    actor_id: int
    severity = fields.CharField(max_length=16)  # suspend | silence
    reason = fields.CharField(max_length=1000, default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "actor_sanctions"


class ActorBlock(Model):
    """A member blocks or mutes an actor (`target`) or a whole domain (`target_domain`).

    `block`: no follows either way, nothing from them reaches the member, a `Block` is sent to a
    remote target. `mute`: their posts are hidden from the member; nothing is sent.
    """

    id = fields.BigIntField(primary_key=True)
    owner: fields.ForeignKeyRelation[Actor] = fields.ForeignKeyField(
        "models.Actor", related_name="blocks_made", on_delete=fields.CASCADE
    )
    owner_id: int
    target: fields.ForeignKeyNullableRelation[Actor] = fields.ForeignKeyField(
        "models.Actor", related_name="blocks_received", on_delete=fields.CASCADE, null=True
    )
    target_id: int | None
    target_domain = fields.CharField(max_length=255, null=True, db_index=True)
    kind = fields.CharField(max_length=8, default="block")  # block | mute
    ap_id = fields.CharField(max_length=512, null=True, unique=True)  # our Block activity's id
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "actor_blocks"


class Report(Model):
    """A report about an actor and some of its posts: filed here by a member or received as `Flag`.

    The reporter of a forwarded report is never revealed (the instance actor sends the `Flag`).
    """

    id = fields.BigIntField(primary_key=True)
    ap_id = fields.CharField(max_length=512, null=True, unique=True)  # Flag id (sent or received)
    origin = fields.CharField(max_length=8, default="local")  # local | remote
    reporter: fields.ForeignKeyNullableRelation[Actor] = fields.ForeignKeyField(
        "models.Actor", related_name="reports_filed", on_delete=fields.SET_NULL, null=True
    )
    reporter_id: int | None
    reporter_domain = fields.CharField(max_length=255, default="")
    target: fields.ForeignKeyNullableRelation[Actor] = fields.ForeignKeyField(
        "models.Actor", related_name="reports_about", on_delete=fields.SET_NULL, null=True
    )
    target_id: int | None
    target_ap_id = fields.CharField(max_length=512)
    object_ids = fields.JSONField[Any](default=list)  # reported post ids (capped)
    comment = fields.TextField(default="")
    forward = fields.BooleanField(default=False)
    forwarded_at = fields.DatetimeField(null=True)
    state = fields.CharField(max_length=16, default="open", db_index=True)  # open|resolved|dismissed
    resolved_by: fields.ForeignKeyNullableRelation[Actor] = fields.ForeignKeyField(
        "models.Actor", related_name="reports_resolved", on_delete=fields.SET_NULL, null=True
    )
    resolution = fields.CharField(max_length=1000, default="")
    created_at = fields.DatetimeField(auto_now_add=True)
    resolved_at = fields.DatetimeField(null=True)

    class Meta:
        table = "reports"


class AuditLog(Model):
    """What an admin (or the command line, `admin` NULL) did to whom, and when."""

    id = fields.BigIntField(primary_key=True)
    admin: fields.ForeignKeyNullableRelation[Actor] = fields.ForeignKeyField(
        "models.Actor", related_name="audit_entries", on_delete=fields.SET_NULL, null=True
    )
    admin_id: int | None
    action = fields.CharField(max_length=64)
    target = fields.CharField(max_length=512, default="")
    detail = fields.CharField(max_length=1000, default="")
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:
        table = "audit_log"

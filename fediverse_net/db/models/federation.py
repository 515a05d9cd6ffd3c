"""Durable federation queues: received activities, outgoing activities and their deliveries."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model

from fediverse_net.db.models.actors import Actor


class InboxItem(Model):
    """A verified incoming activity, persisted before we answer 202 and processed later.

    `activity_id` is unique: a replay or a second copy (shared + personal inbox) is a no-op.
    The row is written only after signature and origin checks, so ids cannot be pre-poisoned.
    """

    id = fields.BigIntField(primary_key=True)
    activity_id = fields.CharField(max_length=512, unique=True)
    actor_ap_id = fields.CharField(max_length=512)
    type = fields.CharField(max_length=32)
    payload = fields.JSONField[Any]()
    recipient = fields.CharField(max_length=512, null=True)  # personal inbox owner, if any
    refetch = fields.BooleanField(default=False)  # signer != actor: do not trust inline content
    state = fields.CharField(max_length=16, default="pending", db_index=True)  # pending|done|failed
    attempts = fields.IntField(default=0)
    error = fields.CharField(max_length=500, null=True)
    received_at = fields.DatetimeField(auto_now_add=True)
    next_attempt_at = fields.DatetimeField(db_index=True)
    claimed_until = fields.DatetimeField(null=True)
    processed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "inbox_items"


class OutgoingActivity(Model):
    """An activity we send. Its JSON bytes are serialised once and reused for every inbox."""

    id = fields.BigIntField(primary_key=True)
    ap_id = fields.CharField(max_length=512, unique=True)
    type = fields.CharField(max_length=32)
    actor: fields.ForeignKeyRelation[Actor] = fields.ForeignKeyField(
        "models.Actor", related_name="outgoing", on_delete=fields.CASCADE
    )
    actor_id: int
    body = fields.TextField()
    # Sign with this key instead of the actor's current one (key rotation: the Update announcing
    # the new key is signed with the old one). Cleared once every delivery has finished.
    signing_key_pem = fields.TextField(null=True)
    public = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "outgoing_activities"


class Delivery(Model):
    """One (activity, inbox) pair to deliver, at least once, with retries (transactional outbox)."""

    id = fields.BigIntField(primary_key=True)
    activity: fields.ForeignKeyRelation[OutgoingActivity] = fields.ForeignKeyField(
        "models.OutgoingActivity", related_name="deliveries", on_delete=fields.CASCADE
    )
    activity_id: int
    inbox_url = fields.CharField(max_length=512)
    host = fields.CharField(max_length=255, db_index=True)
    state = fields.CharField(max_length=16, default="pending")  # pending|delivered|failed|dropped
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField()
    claimed_until = fields.DatetimeField(null=True)
    last_status = fields.IntField(null=True)
    last_error = fields.CharField(max_length=500, null=True)
    bypass_availability = fields.BooleanField(default=False)  # Follow requests (Mastodon exempts them)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "deliveries"
        indexes = (("state", "next_attempt_at"),)


class HostHealth(Model):
    """Per-host delivery health: failure days, the unavailable mark, and the signature scheme that works."""

    host = fields.CharField(max_length=255, primary_key=True)
    failure_days = fields.JSONField[Any](default=list)  # ISO dates with failures since the last success
    unavailable = fields.BooleanField(default=False)
    last_success_at = fields.DatetimeField(null=True)
    last_failure_at = fields.DatetimeField(null=True)
    backoff_until = fields.DatetimeField(null=True)
    # Failed attempts in a row (any day); drives the per-host circuit breaker (services/deliveries.py).
    consecutive_failures = fields.IntField(default=0)
    signature_scheme = fields.CharField(max_length=16, default="draft-cavage")

    class Meta:
        table = "host_health"

"""Actors (local and remote, one table), member accounts, public keys."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


class Actor(Model):
    """Any ActivityPub actor we know: our members, groups and instance actor, and remote ones.

    `ap_id` is the protocol id and never changes; `id` is the database key. Local actors carry
    their private key; remote ones carry the raw document they were built from.
    """

    id = fields.BigIntField(primary_key=True)
    ap_id = fields.CharField(max_length=512, unique=True)
    type = fields.CharField(max_length=32)
    local = fields.BooleanField(default=False, db_index=True)
    username = fields.CharField(max_length=128)
    # Lower-cased handle, set for local actors only: one namespace for members and groups.
    handle = fields.CharField(max_length=64, null=True, unique=True)
    domain = fields.CharField(max_length=255, db_index=True)
    name = fields.CharField(max_length=256, default="")
    summary = fields.TextField(default="")
    url = fields.CharField(max_length=512, null=True)
    avatar_url = fields.CharField(max_length=512, null=True)
    header_url = fields.CharField(max_length=512, null=True)
    inbox_url = fields.CharField(max_length=512)
    shared_inbox_url = fields.CharField(max_length=512, null=True)
    outbox_url = fields.CharField(max_length=512, null=True)
    followers_url = fields.CharField(max_length=512, null=True)
    following_url = fields.CharField(max_length=512, null=True)
    manually_approves_followers = fields.BooleanField(default=False)
    discoverable = fields.BooleanField(default=False)
    indexable = fields.BooleanField(default=False)
    private_key_pem = fields.TextField(null=True)
    document = fields.JSONField[Any](null=True)
    fetched_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    deleted_at = fields.DatetimeField(null=True)
    suspended = fields.BooleanField(default=False)

    keys: fields.ReverseRelation[PublicKey]

    class Meta:
        table = "actors"
        # The group directory lists groups by name (db/group_search.py).
        indexes = (("type", "name", "id"),)

    @property
    def delivery_inbox(self) -> str:
        """Shared inbox when the actor has one, else its own (protocol §4.3)."""
        return self.shared_inbox_url or self.inbox_url

    @property
    def acct(self) -> str:
        return f"{self.username}@{self.domain}"


class PublicKey(Model):
    """A public key by its `keyId`. Local actors' keys are stored here too."""

    id = fields.BigIntField(primary_key=True)
    key_id = fields.CharField(max_length=512, unique=True)
    actor: fields.ForeignKeyRelation[Actor] = fields.ForeignKeyField(
        "models.Actor", related_name="keys", on_delete=fields.CASCADE
    )
    pem = fields.TextField()
    fetched_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "public_keys"


class Account(Model):
    """The login of a local member. Its public face is `actor` (a local Person)."""

    id = fields.BigIntField(primary_key=True)
    actor: fields.OneToOneRelation[Actor] = fields.OneToOneField(
        "models.Actor", related_name="account", on_delete=fields.CASCADE
    )
    password_hash = fields.CharField(max_length=255)
    is_admin = fields.BooleanField(default=False)
    approved = fields.BooleanField(default=True)
    application_text = fields.TextField(default="")
    interests = fields.JSONField[Any](default=list)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_login_at = fields.DatetimeField(null=True)

    class Meta:
        table = "accounts"

"""All tortoise models of the one app label `models`."""

from fediverse_net.db.models.actors import Account, Actor, PublicKey
from fediverse_net.db.models.federation import Delivery, HostHealth, InboxItem, OutgoingActivity
from fediverse_net.db.models.social import Follow, Note, Tombstone

__all__ = [
    "Account",
    "Actor",
    "Delivery",
    "Follow",
    "HostHealth",
    "InboxItem",
    "Note",
    "OutgoingActivity",
    "PublicKey",
    "Tombstone",
]

"""All tortoise models of the one app label `models`."""

from fediverse_net.db.models.actors import Account, Actor, PublicKey
from fediverse_net.db.models.federation import Delivery, HostHealth, InboxItem, OutgoingActivity
from fediverse_net.db.models.groups import (
    Group,
    GroupPost,
    JoinQuestion,
    Membership,
    ModLog,
    TrustedInstance,
    Vouch,
)
from fediverse_net.db.models.moderation import ActorBlock, ActorSanction, AuditLog, DomainBlock, Report
from fediverse_net.db.models.social import Follow, Note, Tombstone

__all__ = [
    "Account",
    "Actor",
    "ActorBlock",
    "ActorSanction",
    "AuditLog",
    "Delivery",
    "DomainBlock",
    "Follow",
    "Group",
    "GroupPost",
    "HostHealth",
    "InboxItem",
    "JoinQuestion",
    "Membership",
    "ModLog",
    "Note",
    "OutgoingActivity",
    "PublicKey",
    "Report",
    "Tombstone",
    "TrustedInstance",
    "Vouch",
]

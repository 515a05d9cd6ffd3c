"""What instance admins do: domain blocks, suspending or limiting remote actors, suspending members,
and the audit log every one of these writes to (product.md: the instance admin persona).

Suspending a local member sends `Update{actor}` with `suspended: true` to its contacts (Mastodon's
reversible form, `toot:suspended`); lifting it sends the plain `Update`. Suspending a domain drops
every follow between our actors and its actors, like Mastodon's `BlockDomainService`.
"""

from __future__ import annotations

from typing import Final

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from fediverse_net.db.models import (
    Account,
    Actor,
    ActorSanction,
    AuditLog,
    DomainBlock,
    Follow,
    Membership,
)
from fediverse_net.deps import Deps
from fediverse_net.services import moderation
from fediverse_net.services.actor_lifecycle import announce_update
from fediverse_net.services.errors import Forbidden, NotFound, ServiceError

SEVERITIES: Final = ("suspend", "silence", "noop")
MAX_COMMENT: Final = 1000


def require_admin(account: Account | None) -> Account:
    if account is None or not account.is_admin:
        raise Forbidden("Only admins of this server can do this.")
    return account


async def audit(admin: Actor | None, action: str, target: str, detail: str = "") -> None:
    await AuditLog.create(admin=admin, action=action[:64], target=target[:512], detail=detail[:1000])


async def audit_log(limit: int = 200) -> list[AuditLog]:
    return await AuditLog.all().select_related("admin").order_by("-id").limit(limit)


# --- domains ----------------------------------------------------------------------------------------


def _domain_actors(domain: str) -> Q:
    return (
        Q(domain=domain)
        | Q(domain__startswith=f"{domain}:")
        | Q(domain__endswith=f".{domain}")
        | Q(domain__contains=f".{domain}:")
    )


async def block_domain(
    deps: Deps,
    admin: Actor | None,
    raw_domain: str,
    severity: str = "suspend",
    *,
    reject_media: bool = False,
    reject_reports: bool = False,
    comment: str = "",
) -> DomainBlock:
    """Create or change the policy for a domain (and its subdomains)."""
    domain = moderation.normalise_domain(raw_domain)
    if severity not in SEVERITIES:
        raise ServiceError(f"Severity must be one of {', '.join(SEVERITIES)}.")
    if domain in moderation.domain_candidates(deps.settings.host):
        raise ServiceError("This is our own domain.")
    async with in_transaction():
        row = await DomainBlock.filter(domain=domain).first()
        if row is None:
            row = DomainBlock(domain=domain)
        row.severity = severity
        row.reject_media = reject_media
        row.reject_reports = reject_reports
        row.private_comment = comment.strip()[:MAX_COMMENT]
        await row.save()
        if severity == "suspend":
            remote = await Actor.filter(_domain_actors(domain), local=False).values("id")
            ids = [int(row["id"]) for row in remote]
            await Follow.filter(Q(follower_id__in=ids) | Q(followee_id__in=ids)).delete()
            await Membership.filter(Q(member_id__in=ids) | Q(group_id__in=ids)).delete()
        flags = [f for f, on in (("reject media", reject_media), ("reject reports", reject_reports)) if on]
        await audit(admin, f"domain.{severity}", domain, ", ".join(flags))
    moderation.forget_policies(deps)
    return row


async def unblock_domain(deps: Deps, admin: Actor | None, raw_domain: str) -> None:
    domain = moderation.normalise_domain(raw_domain)
    async with in_transaction():
        if not await DomainBlock.filter(domain=domain).delete():
            raise NotFound(f"{domain} is not blocked.")
        await audit(admin, "domain.unblock", domain)
    moderation.forget_policies(deps)


async def domain_blocks() -> list[DomainBlock]:
    return await DomainBlock.all().order_by("domain")


# --- remote actors ----------------------------------------------------------------------------------


async def sanction_actor(
    deps: Deps, admin: Actor | None, actor: Actor, severity: str, reason: str = ""
) -> None:
    """Suspend (refuse everything, hide everything) or silence (limit) a remote actor."""
    if actor.local:
        raise ServiceError("Use suspend_member for accounts of this server.")
    if severity not in ("suspend", "silence"):
        raise ServiceError("Severity must be suspend or silence.")
    async with in_transaction():
        await ActorSanction.filter(actor_id=actor.id).delete()
        await ActorSanction.create(actor=actor, severity=severity, reason=reason[:MAX_COMMENT])
        if severity == "suspend":
            await Actor.filter(id=actor.id).update(suspended=True)
            await Follow.filter(Q(follower_id=actor.id) | Q(followee_id=actor.id)).delete()
            await Membership.filter(Q(member_id=actor.id) | Q(group_id=actor.id)).delete()
        await audit(admin, f"actor.{severity}", actor.ap_id, reason)
    moderation.forget_suspended(deps)  # the inbox's cached set of suspended actors


async def lift_sanction(deps: Deps, admin: Actor | None, actor: Actor) -> None:
    async with in_transaction():
        await ActorSanction.filter(actor_id=actor.id).delete()
        if not actor.local:
            await Actor.filter(id=actor.id).update(suspended=False)
        await audit(admin, "actor.unsanction", actor.ap_id)
    moderation.forget_suspended(deps)


# --- local members ----------------------------------------------------------------------------------


async def _announce(deps: Deps, actor: Actor, *, suspended: bool) -> None:
    await announce_update(deps, actor, extra={"suspended": True} if suspended else None)


async def suspend_member(deps: Deps, admin: Actor | None, handle: str, reason: str = "") -> Actor:
    """Suspend a local member: no login, no profile, posts hidden; `Update{suspended: true}` goes out."""
    actor = await Actor.filter(handle=handle.lower().lstrip("@"), local=True, deleted_at=None).first()
    if actor is None or actor.type == "Application":
        raise NotFound("There is no such member here.")
    if admin is not None and admin.id == actor.id:
        raise ServiceError("You cannot suspend yourself.")
    async with in_transaction():
        actor.suspended = True
        await actor.save(update_fields=["suspended", "updated_at"])
        await _announce(deps, actor, suspended=True)
        await audit(admin, "member.suspend", actor.ap_id, reason)
    return actor


async def unsuspend_member(deps: Deps, admin: Actor | None, handle: str) -> Actor:
    actor = await Actor.filter(handle=handle.lower().lstrip("@"), local=True, deleted_at=None).first()
    if actor is None:
        raise NotFound("There is no such member here.")
    async with in_transaction():
        actor.suspended = False
        await actor.save(update_fields=["suspended", "updated_at"])
        await _announce(deps, actor, suspended=False)
        await audit(admin, "member.unsuspend", actor.ap_id)
    return actor

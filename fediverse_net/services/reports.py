"""Reports: members report posts and accounts; admins work through one queue (protocol §5.8).

* A report about a remote account is forwarded, when the reporter agrees, as a `Flag` from the
  **instance actor** (the reporter is never revealed) to the account's personal inbox:
  `object` = [account id, reported post ids…], the comment in `content`.
* A received `Flag` lands in the same queue. Only objects that are ours count (our members, our
  posts); foreign ones are dropped and the list is capped (security matrix row 20). The reported
  member is never told.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from fediverse_net.activitypub.parse import JSON, first_string, host_of, ids_of
from fediverse_net.activitypub.vocab import AS_CONTEXT
from fediverse_net.db.models import Account, Actor, Note, Report
from fediverse_net.deps import Deps
from fediverse_net.services import instance_admin, moderation
from fediverse_net.services.errors import NotFound, ServiceError
from fediverse_net.services.outbox import record_outgoing
from fediverse_net.services.timeline import can_view
from fediverse_net.urls import new_token

MAX_COMMENT: Final = 5000  # Mastodon truncates Flag content to 5 000 characters
MAX_REPORTED_POSTS: Final = 20
MAX_FLAG_OBJECTS: Final = 100  # entries of a received Flag we look at at all
DECISIONS: Final = ("resolve", "dismiss", "suspend")


def flag_activity(
    flag_id: str, instance_actor: str, target: Actor, object_ids: list[str], comment: str
) -> JSON:
    return {
        "@context": AS_CONTEXT,
        "id": flag_id,
        "type": "Flag",
        "actor": instance_actor,
        "content": comment,
        "object": [target.ap_id, *object_ids],
    }


async def file_report(
    deps: Deps, reporter: Actor, target: Actor, *, note_ids: list[int], comment: str, forward: bool
) -> Report:
    """A member reports `target` (and some of its posts); forwarded as a Flag when asked and remote."""
    comment = comment.strip()
    if len(comment) > MAX_COMMENT:
        raise ServiceError(f"Please keep the report under {MAX_COMMENT} characters.")
    if target.id == reporter.id:
        raise ServiceError("You cannot report yourself.")
    if target.type == "Application":
        raise ServiceError("Server accounts cannot be reported.")
    if len(note_ids) > MAX_REPORTED_POSTS:
        raise ServiceError(f"Report at most {MAX_REPORTED_POSTS} posts at once.")
    notes = await Note.filter(id__in=note_ids, author_id=target.id) if note_ids else []
    object_ids = [n.ap_id for n in notes]
    forward = forward and not target.local
    async with in_transaction():
        report = await Report.create(
            origin="local",
            reporter=reporter,
            reporter_domain=deps.settings.domain,
            target=target,
            target_ap_id=target.ap_id,
            object_ids=object_ids,
            comment=comment,
            forward=forward,
        )
        if forward:
            await _forward(deps, report, target)
    return report


async def _forward(deps: Deps, report: Report, target: Actor) -> None:
    instance = await Actor.get(ap_id=deps.urls.instance_actor)
    flag_id = deps.urls.activity(new_token())
    activity = flag_activity(flag_id, instance.ap_id, target, list(report.object_ids), report.comment)
    await record_outgoing(deps, actor=instance, activity=activity, recipients=[target], personal=True)
    report.ap_id = flag_id
    report.forwarded_at = deps.clock()
    await report.save(update_fields=["ap_id", "forwarded_at"])


async def receive_flag(deps: Deps, actor: Actor, activity: JSON) -> Report | None:
    """A remote server's report about our members or posts; None when nothing in it is ours."""
    policy = await moderation.policy_for(deps, actor.ap_id)
    if policy is not None and policy.reject_reports:
        return None
    objects = [i for i in ids_of(activity.get("object"), limit=MAX_FLAG_OBJECTS) if deps.urls.is_local(i)]
    if not objects:
        return None
    accounts = await Actor.filter(ap_id__in=objects, local=True, deleted_at=None)
    notes = await Note.filter(ap_id__in=objects, local=True).select_related("author")
    target = accounts[0] if accounts else (notes[0].author if notes else None)
    if target is None:
        return None
    post_ids = [n.ap_id for n in notes if n.author_id == target.id][:MAX_REPORTED_POSTS]
    content = first_string(activity.get("content"), activity.get("contentMap")) or ""
    try:
        return await Report.create(
            ap_id=str(activity["id"])[:512],
            origin="remote",
            reporter_domain=host_of(actor.ap_id)[:255],
            target=target,
            target_ap_id=target.ap_id,
            object_ids=post_ids,
            comment=content[:MAX_COMMENT],
        )
    except IntegrityError:  # the same Flag twice
        return None


# --- the admin queue --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportView:
    report: Report
    notes: list[Note]  # the reported posts we still have


async def queue(admin: Account, *, state: str = "open", limit: int = 100) -> list[ReportView]:
    """Reports in `state`, oldest first, with the reported posts for context."""
    instance_admin.require_admin(admin)
    rows = (
        await Report.filter(state=state)
        .select_related("target", "reporter")
        .order_by("created_at" if state == "open" else "-id")
        .limit(limit)
    )
    views = []
    for row in rows:
        notes = await Note.filter(ap_id__in=list(row.object_ids)[:MAX_REPORTED_POSTS]).select_related(
            "author"
        )
        views.append(ReportView(report=row, notes=list(notes)))
    return views


async def decide(deps: Deps, admin: Account, report_id: int, decision: str, note: str = "") -> Report:
    """Resolve or dismiss a report; `suspend` also suspends the reported account."""
    instance_admin.require_admin(admin)
    if decision not in DECISIONS:
        raise NotFound("This page does not exist.")
    report = await Report.filter(id=report_id, state="open").select_related("target").first()
    if report is None:
        raise NotFound("This report was already handled.")
    admin_actor = await admin.actor
    async with in_transaction():
        if decision == "suspend" and report.target is not None:
            target = report.target
            if target.local and target.handle:
                await instance_admin.suspend_member(deps, admin_actor, target.handle, f"report #{report.id}")
            elif not target.local:
                await instance_admin.sanction_actor(
                    deps, admin_actor, target, "suspend", f"report #{report.id}"
                )
        report.state = "dismissed" if decision == "dismiss" else "resolved"
        report.resolved_by = admin_actor
        report.resolved_at = deps.clock()
        report.resolution = (decision + (f": {note.strip()}" if note.strip() else ""))[:1000]
        await report.save(update_fields=["state", "resolved_by_id", "resolved_at", "resolution"])
        await instance_admin.audit(
            admin_actor, f"report.{decision}", f"report #{report.id}", report.target_ap_id
        )
    return report


async def reportable(
    deps: Deps, viewer: Actor, actor_id: int, note_id: int | None
) -> tuple[Actor, Note | None]:
    """The account (and post) a member wants to report, as they may see it."""
    target = await Actor.filter(id=actor_id, deleted_at=None).first()
    if target is None:
        raise NotFound("That account does not exist any more.")
    note = None
    if note_id is not None:
        note = await Note.filter(id=note_id, author_id=target.id).first()
        if note is None or not await can_view(viewer, note):
            raise NotFound("That post does not exist any more.")
    return target, note

"""Safety pages: a member's blocks and mutes, the report form, and the admins' report queue,
domain blocks and audit log. Each handler: form → one service → page (services/blocks.py,
services/reports.py, services/instance_admin.py).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from fediverse_net.activitypub.clock import ClockEstimate
from fediverse_net.db.models import Account, Actor
from fediverse_net.services import blocks, instance_admin, ratelimit, reports
from fediverse_net.services.errors import Forbidden, NotFound, ServiceError
from fediverse_net.web.forms import current_account, field, flash, read_form
from fediverse_net.web.templating import handle_text, html_errors, render
from fediverse_net.web.wellknown import deps_of


def client_ip(request: Request) -> str | None:
    """The client's address for per-address limits; None for loopback or unknown clients.

    A loopback client means we cannot tell senders apart (a reverse proxy that does not pass
    X-Forwarded-For, local tools): one shared bucket would lock everybody out, so per-address
    limits do not apply; per-account and per-handle limits still do.
    """
    host = request.client.host if request.client else ""
    try:
        return None if ipaddress.ip_address(host).is_loopback else host
    except ValueError:
        return None


async def too_many(request: Request, exc: ratelimit.RateLimited) -> Response:
    """The HTML answer to a rate limit: 429 with Retry-After."""
    response = await render(request, "error.html", {"status": 429, "message": str(exc)}, status=429)
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


def _see_other(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def _back(raw: str, default: str) -> str:
    ok = raw.startswith("/") and not raw.startswith(("//", "/\\")) and len(raw) < 1000
    return raw if ok and not any(ch.isspace() or ch == "\\" for ch in raw) else default


def _id(raw: str) -> int:
    if not raw.isdigit() or len(raw) > 18:
        raise NotFound("That account does not exist any more.")
    return int(raw)


async def _member(request: Request) -> Account:
    account = await current_account(request)
    if account is None:
        raise Forbidden("Please log in first.")
    return account


def _clock_warning(request: Request) -> ClockEstimate | None:
    """The clock estimate when our clock is off (F15): the admin pages show it as a warning."""
    client = deps_of(request).client
    estimate = client.clock_monitor.estimate() if client is not None else None
    return estimate if estimate is not None and estimate.status == "skewed" else None


# --- a member's blocks and mutes --------------------------------------------------------------------


@html_errors
async def settings_blocks(request: Request) -> Response:
    """`/settings/blocks`: who and which domains one blocks or mutes, and a form to add a domain."""
    account = await current_account(request)
    if account is None:
        return _see_other("/login")
    lists = await blocks.block_lists(account.actor)
    return await render(request, "moderation_blocks.html", {"lists": lists, "error": None})


@html_errors
async def block(request: Request) -> Response:
    """POST `/block` with `actor_id` or `domain`, and `kind` = block | mute."""
    form = await read_form(request)
    account = await _member(request)
    deps = deps_of(request)
    back = _back(field(form, "back"), "/settings/blocks")
    kind = field(form, "kind") or "block"
    try:
        if domain := field(form, "domain").strip():
            row = await blocks.block_domain(deps, account.actor, domain, kind)
            what = row.target_domain or domain
        else:
            target = await Actor.filter(id=_id(field(form, "actor_id")), deleted_at=None).first()
            if target is None:
                raise NotFound("That account does not exist any more.")
            await blocks.block_actor(deps, account.actor, target, kind)
            what = handle_text(target)
    except NotFound:
        raise
    except ServiceError as exc:
        flash(request, str(exc))
        return _see_other(back)
    flash(request, f"You blocked {what}." if kind == "block" else f"You muted {what}.")
    return _see_other(back)


@html_errors
async def unblock(request: Request) -> Response:
    """POST `/settings/blocks/{id}/remove`."""
    await read_form(request)
    account = await _member(request)
    row = await blocks.unblock(deps_of(request), account.actor, request.path_params["block_id"])
    label = "block" if row.kind == "block" else "mute"
    flash(request, f"The {label} is lifted.")
    return _see_other("/settings/blocks")


# --- reports ----------------------------------------------------------------------------------------


def _optional_id(raw: str) -> int | None:
    return _id(raw) if raw else None


@html_errors
async def report(request: Request) -> Response:
    """`/report?actor=ID[&note=ID]`: the form; POST files the report."""
    account = await current_account(request)
    if account is None:
        return _see_other("/login")
    deps = deps_of(request)
    if request.method == "GET":
        params = request.query_params
        target, note = await reports.reportable(
            deps, account.actor, _id(params.get("actor", "")), _optional_id(params.get("note", ""))
        )
        context: dict[str, Any] = {"target": target, "note": note, "error": None, "comment": ""}
        return await render(request, "moderation_report.html", context)
    form = await read_form(request, max_field=10_000)
    target, note = await reports.reportable(
        deps, account.actor, _id(field(form, "actor_id")), _optional_id(field(form, "note_id"))
    )
    try:
        ratelimit.check(deps, "rate_limit_report", f"account:{account.id}", what="reports")
        await reports.file_report(
            deps,
            account.actor,
            target,
            note_ids=[note.id] if note is not None else [],
            comment=field(form, "comment"),
            forward=field(form, "forward") == "yes",
        )
    except ratelimit.RateLimited as exc:
        return await too_many(request, exc)
    except ServiceError as exc:
        context = {"target": target, "note": note, "error": str(exc), "comment": field(form, "comment")}
        return await render(request, "moderation_report.html", context, status=400)
    flash(request, "Thank you. The admins of this server will look at your report.")
    return _see_other("/")


@html_errors
async def admin_reports(request: Request) -> Response:
    """`/admin/reports[?state=resolved|dismissed]`: the queue, with the reported posts."""
    account = instance_admin.require_admin(await current_account(request))
    state = request.query_params.get("state", "open")
    state = state if state in ("open", "resolved", "dismissed") else "open"
    views = await reports.queue(account, state=state)
    context = {"views": views, "state": state, "clock": _clock_warning(request)}
    return await render(request, "moderation_reports.html", context)


@html_errors
async def admin_report_decide(request: Request) -> Response:
    """POST `/admin/reports/{id}/resolve|dismiss|suspend`."""
    form = await read_form(request)
    account = instance_admin.require_admin(await current_account(request))
    decision = request.path_params["decision"]
    done = await reports.decide(
        deps_of(request), account, request.path_params["report_id"], decision, field(form, "note")
    )
    flash(request, f"Report #{done.id} is {done.state}.")
    return _see_other("/admin/reports")


# --- domain blocks and the audit log ----------------------------------------------------------------


@html_errors
async def admin_domains(request: Request) -> Response:
    """`/admin/domains`: the instance's domain blocks (GET) or a new/changed one (POST)."""
    account = instance_admin.require_admin(await current_account(request))
    error = None
    status = 200
    if request.method == "POST":
        form = await read_form(request)
        try:
            row = await instance_admin.block_domain(
                deps_of(request),
                account.actor,
                field(form, "domain"),
                field(form, "severity") or "suspend",
                reject_media=field(form, "reject_media") == "yes",
                reject_reports=field(form, "reject_reports") == "yes",
                comment=field(form, "comment"),
            )
        except ServiceError as exc:
            error, status = str(exc), 400
        else:
            flash(request, f"{row.domain}: {row.severity}.")
            return _see_other("/admin/domains")
    context = {
        "rows": await instance_admin.domain_blocks(),
        "entries": await instance_admin.audit_log(50),
        "clock": _clock_warning(request),
    }
    return await render(request, "moderation_domains.html", {**context, "error": error}, status=status)


@html_errors
async def admin_domain_remove(request: Request) -> Response:
    form = await read_form(request)
    account = instance_admin.require_admin(await current_account(request))
    await instance_admin.unblock_domain(deps_of(request), account.actor, field(form, "domain"))
    flash(request, "The domain block is lifted.")
    return _see_other("/admin/domains")


def routes() -> list[BaseRoute]:
    return [
        Route("/settings/blocks", settings_blocks, name="settings_blocks"),
        Route("/block", block, methods=["POST"], name="block"),
        Route("/settings/blocks/{block_id:int}/remove", unblock, methods=["POST"], name="unblock"),
        Route("/report", report, methods=["GET", "POST"], name="report"),
        Route("/admin/reports", admin_reports, name="admin_reports"),
        Route(
            "/admin/reports/{report_id:int}/{decision:str}",
            admin_report_decide,
            methods=["POST"],
            name="admin_report_decide",
        ),
        Route("/admin/domains", admin_domains, methods=["GET", "POST"], name="admin_domains"),
        Route("/admin/domains/remove", admin_domain_remove, methods=["POST"], name="admin_domain_remove"),
    ]

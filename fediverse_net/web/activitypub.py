"""ActivityPub GETs of local actors and their collections (content-negotiated with the HTML pages)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import Scope

from fediverse_net.activitypub import builders
from fediverse_net.activitypub.errors import SignatureError
from fediverse_net.activitypub.vocab import wants_activitypub
from fediverse_net.deps import Deps
from fediverse_net.services import actor_documents, discovery, fetch_auth
from fediverse_net.services.errors import NotFound
from fediverse_net.services.groups import documents as group_documents
from fediverse_net.services.notes import note_object
from fediverse_net.web.inbox import request_parts
from fediverse_net.web.responses import ACTIVITY_HEADERS, ActivityJSONResponse, PreparedResponse, json_error
from fediverse_net.web.wellknown import deps_of


async def fetch_denied(request: Request) -> Response | None:
    """In authorized-fetch mode, a 401 for GETs without a valid signature; else None."""
    deps = deps_of(request)
    if not deps.settings.authorized_fetch:
        return None
    parts = request_parts(request, b"", deps.settings.origin)
    try:
        signer = await fetch_auth.signed_by(deps, parts)
    except SignatureError as exc:
        return json_error(401, str(exc), headers={"Vary": "Accept, Signature"})
    if signer is None:
        return json_error(401, "Request not signed", headers={"Vary": "Accept, Signature"})
    return None


def _page(request: Request) -> int | None:
    raw = request.query_params.get("page")
    if raw is None:
        return None
    try:
        page = int(raw)
    except ValueError:
        return 1
    return min(max(page, 1), 10_000)


async def member(request: Request) -> Response:
    """`/users/{handle}`: the Person document, or a redirect to the HTML profile for browsers."""
    deps = deps_of(request)
    handle = request.path_params["handle"].lower()
    try:
        served = await actor_documents.member_document(deps, handle)
    except discovery.Gone:
        return json_error(410, "gone")
    except NotFound:
        return json_error(404, "not found")
    if not wants_activitypub(request.headers.get("accept")):
        url = served.document.get("url")
        return RedirectResponse(
            url if isinstance(url, str) and url else "/", status_code=302, headers={"Vary": "Accept"}
        )
    if await fetch_denied(request) is not None:
        # Public keys stay fetchable without a signature, or nobody could verify ours.
        return ActivityJSONResponse(fetch_auth.key_only(served.document))
    return PreparedResponse(served.body, ACTIVITY_HEADERS)


def cached_member_answer(deps: Deps, scope: Scope) -> Response | None:
    """`member`'s answer straight from the document cache, for `CachedReads` (web/middleware.py).

    Only where `member` would send the cached bytes unchanged: a GET of `/users/{handle}` asking
    for ActivityPub, with the document cached. Never in authorized-fetch mode and never for a
    signed GET: those go through `member` and every check on the signer.
    """
    path: str = scope["path"]
    if not path.startswith("/users/") or deps.settings.authorized_fetch:
        return None
    handle = path[len("/users/") :]
    if not handle or "/" in handle:
        return None
    accept: str | None = None
    for name, value in scope["headers"]:
        if name == b"accept":
            if accept is None:  # the first one, as Request.headers.get reads it
                accept = value.decode("latin-1")
        elif name in (b"signature", b"signature-input"):
            return None
    if not wants_activitypub(accept):
        return None
    served = actor_documents.cached_member_document(deps, handle.lower())
    return PreparedResponse(served.body, ACTIVITY_HEADERS) if served is not None else None


async def instance_actor(request: Request) -> Response:
    """`/actor`: served to anyone, never requiring a signature (protocol §2.5)."""
    deps = deps_of(request)
    actor = await discovery.actor_for_resource(deps.settings, deps.urls.instance_actor)
    return ActivityJSONResponse(await actor_documents.document_for(actor, deps.urls))


async def collection(request: Request) -> Response:
    """followers / following / outbox of a local member."""
    handle = request.path_params["handle"]
    which = request.path_params["which"]
    if which not in ("followers", "following", "outbox"):
        return json_error(404, "not found")
    if (denied := await fetch_denied(request)) is not None:
        return denied
    try:
        actor = await discovery.local_actor(handle)
    except discovery.Gone:
        return json_error(410, "gone")
    except NotFound:
        return json_error(404, "not found")
    if which == "outbox":
        document = await actor_documents.outbox(actor, _page(request), deps_of(request).urls)
    else:
        # Lists of people follow the member's visibility setting, for unsigned and signed
        # requests alike; a group's followers are never listed (product.md privacy by default).
        document = await actor_documents.follow_collection(
            actor, which, _page(request), show_items=actor.type == "Person" and actor.discoverable
        )
    return ActivityJSONResponse(document)


async def note(request: Request) -> Response:
    """`/notes/{token}`: the Note (410 Tombstone once deleted); HTML readers get the thread page."""
    deps = deps_of(request)
    ap_id = deps.urls.note(request.path_params["token"])
    if not wants_activitypub(request.headers.get("accept")):
        # Browsers get the page, which applies the viewer's own visibility rules.
        handle = await actor_documents.local_author_handle(ap_id)
        if handle is not None:
            return RedirectResponse(
                f"/@{handle}/notes/{request.path_params['token']}",
                status_code=302,
                headers={"Vary": "Accept"},
            )
    found = await actor_documents.public_note(ap_id)
    if found is None:
        if (members_only := await _members_only_note(request, ap_id)) is not None:
            return members_only
        if (tombstone := await actor_documents.tombstone_for(ap_id)) is not None:
            return ActivityJSONResponse(tombstone, status_code=410)
        return json_error(404, "not found")
    note_row, author = found
    if (denied := await fetch_denied(request)) is not None:
        return denied
    document = {"@context": builders.NOTE_CONTEXT, **note_object(note_row, author)}
    return ActivityJSONResponse(document)


async def _members_only_note(request: Request, ap_id: str) -> Response | None:
    """A members-only group post, for a signed fetch by a member of the group (services/groups)."""
    deps = deps_of(request)
    try:
        signer = await fetch_auth.signed_by(deps, request_parts(request, b"", deps.settings.origin))
    except SignatureError:
        return None
    document = await group_documents.members_only_note(deps, ap_id, signer)
    return ActivityJSONResponse(document) if document is not None else None


async def activity(request: Request) -> Response:
    """`/activities/{token}`: public activities are dereferenceable (needed by FEP-1b12 Announces)."""
    deps = deps_of(request)
    token = request.path_params["token"]
    found = await actor_documents.public_note(deps.urls.note(token))
    if found is None:
        return json_error(404, "not found")
    if (denied := await fetch_denied(request)) is not None:
        return denied
    note_row, author = found
    return ActivityJSONResponse(actor_documents.create_of(note_row, author, deps.urls))

"""Instance safety checks: domain policies, suspended actors, and member blocks — in ONE place.

* `check_inbound` runs at the top of the inbox, before any key fetch or DB write: a suspended
  domain (the actor's host or the keyId's host) gets 403, a suspended actor 403 except for
  Delete/Undo/Reject/Update (security matrix rows 20, 21, 35; protocol §6.1.5).
* `inbound_refused` runs in the processing path (`handlers.process_inbox_item`) for every stored
  activity: blocks apply to every IRI it touches — actor, object author, inReplyTo author,
  addressed and mentioned accounts (invariant 7, row 36).
* `blocked_for(recipients, iris, actor=…)` is the one block predicate; group code calls it too.

Domains match themselves and their subdomains, without the port (Mastodon's DomainBlock rule).
Admin actions (domain blocks, sanctions, suspending members) are in `services/instance_admin.py`.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from tortoise.expressions import Q

from fediverse_net.activitypub.parse import JSON, as_list, get_id, get_type, ids_of
from fediverse_net.activitypub.vocab import is_public
from fediverse_net.db.models import Actor, ActorBlock, ActorSanction, DomainBlock, Note
from fediverse_net.deps import Deps
from fediverse_net.services.errors import ServiceError

# Suspended actors may still clean up after themselves (Mastodon: `suspended_actor?` exceptions).
ALLOWED_WHEN_SUSPENDED: Final = frozenset({"Delete", "Undo", "Reject", "Update"})
# Cleaning up and reporting always get through a member's block (the blocked side may still
# delete its posts, end its follows, and a server may still report a member to our admins).
NEVER_BLOCKED: Final = frozenset({"Delete", "Undo", "Reject", "Block", "Flag"})
POLICY_TTL: Final = 15.0  # seconds a process trusts its copy of domain policies and suspensions
MAX_IRIS: Final = 200
_KEY_ID_RE: Final = re.compile(r'keyid\s*=\s*"([^"]{1,2048})"', re.IGNORECASE)
_DOMAIN_RE: Final = re.compile(r"[a-z0-9]([a-z0-9-]{0,62}\.)*[a-z0-9-]{1,63}")


class Refused(Exception):
    """An inbound request refused by policy (403): blocked domain, suspended actor."""


@dataclass(frozen=True, slots=True)
class Policy:
    domain: str
    severity: str  # suspend | silence | noop
    reject_media: bool
    reject_reports: bool


def normalise_domain(raw: str) -> str:
    """`Mastodon.Example.` / `https://x.example/path` / IDN → the lower-case ASCII host, or ServiceError."""
    text = raw.strip().lower()
    if "://" in text:
        text = urlsplit(text).hostname or ""
    text = text.strip().strip(".").split("/")[0]
    text = text.rsplit(":", 1)[0] if text.count(":") == 1 else text
    try:
        text = text.encode("idna").decode("ascii")
    except UnicodeError:
        raise ServiceError("That is not a domain name.") from None
    if len(text) > 253 or not _DOMAIN_RE.fullmatch(text):
        raise ServiceError("That is not a domain name.")
    return text


def host_of_iri(iri: str) -> str | None:
    """The lower-case host (no port) of an http(s) IRI, or None."""
    try:
        host = urlsplit(iri).hostname
    except ValueError:
        return None
    return host.lower().rstrip(".") if host else None


def domain_candidates(host: str) -> list[str]:
    """`a.b.example` → [`a.b.example`, `b.example`, `example`]: a block of any of them applies."""
    labels = host.split(".")
    return [".".join(labels[i:]) for i in range(len(labels))][:16]


# --- instance domain policies -----------------------------------------------------------------------


class _Snapshot:
    """A per-process copy of a small table, reloaded after `ttl` seconds or when forgotten.

    While one caller reloads an expired copy, others keep using the previous one (no burst of
    identical queries). Loads run in the caller's own context (never shared across tasks: a
    caller inside a SQLite transaction must not wait for a query that waits for its lock). A
    load that overlapped a `forget` is not kept, and a forgotten copy is never served: a change
    made in this process is seen by the next request. Other processes see it within `ttl`.
    """

    __slots__ = ("generation", "loaded_at", "loading", "value")

    def __init__(self) -> None:
        self.generation = 0
        self.loaded_at = -math.inf
        self.value: Any = None
        self.loading = False

    async def get(self, load: Callable[[], Awaitable[Any]], ttl: float, *, fresh: bool = False) -> Any:
        if not fresh and time.monotonic() - self.loaded_at < ttl:
            return self.value
        if self.loading and not fresh and self.value is not None:
            return self.value  # being reloaded by another request: the previous copy meanwhile
        generation, started = self.generation, time.monotonic()
        self.loading = True
        try:
            value = await load()
        finally:
            self.loading = False
        if generation == self.generation:  # not forgotten meanwhile: keep it
            self.value, self.loaded_at = value, started
        return value

    def forget(self) -> None:
        self.generation += 1
        self.loaded_at = -math.inf
        self.value = None


def _snapshot(deps: Deps, name: str) -> _Snapshot:
    found = deps.caches.get(name)
    if not isinstance(found, _Snapshot):
        found = deps.caches[name] = _Snapshot()
    return found


async def _load_policies() -> dict[str, Policy]:
    rows = await DomainBlock.all()
    return {r.domain: Policy(r.domain, r.severity, r.reject_media, r.reject_reports) for r in rows}


async def policies(deps: Deps, *, fresh: bool = False) -> dict[str, Policy]:
    """Every domain policy, cached per process for POLICY_TTL seconds (O(1) lookups at the inbox)."""
    table: dict[str, Policy] = await _snapshot(deps, "domain_policies").get(
        _load_policies, POLICY_TTL, fresh=fresh
    )
    return table


def forget_policies(deps: Deps) -> None:
    _snapshot(deps, "domain_policies").forget()


async def _load_suspended() -> frozenset[str]:
    return frozenset(
        map(str, await Actor.filter(suspended=True, local=False).values_list("ap_id", flat=True))
    )


async def suspended_actors(deps: Deps) -> frozenset[str]:
    """The ap ids of every suspended actor, cached per process like the domain policies.

    The inbox asks on every POST: a query each time was the largest cost of benchmark B3.
    Suspensions are rare and few, so the whole set is small (local members never reach the
    inbox over HTTP, so they are not in it).
    """
    found: frozenset[str] = await _snapshot(deps, "suspended_actors").get(_load_suspended, POLICY_TTL)
    return found


async def _load_silenced() -> frozenset[int]:
    rows = await ActorSanction.filter(severity="silence").values("actor_id")
    return frozenset(int(row["actor_id"]) for row in rows)


async def silenced_actors(deps: Deps) -> frozenset[int]:
    """Db ids of silenced (limited) actors, cached like the suspended set (one Follow, one query less)."""
    found: frozenset[int] = await _snapshot(deps, "silenced_actors").get(_load_silenced, POLICY_TTL)
    return found


def forget_suspended(deps: Deps) -> None:
    """Called after an actor's sanction (suspend or silence) changed in this process (instance_admin)."""
    _snapshot(deps, "suspended_actors").forget()
    _snapshot(deps, "silenced_actors").forget()


async def policy_for(deps: Deps, iri_or_host: str) -> Policy | None:
    """The policy for the host of `iri_or_host` (itself or a parent domain), if any."""
    table = await policies(deps)
    if not table:  # the usual case: no parsing at all
        return None
    host = host_of_iri(iri_or_host) if "/" in iri_or_host else iri_or_host.lower().split(":")[0]
    if not host:
        return None
    for candidate in domain_candidates(host):
        if (found := table.get(candidate)) is not None:
            return found
    return None


async def is_suspended_domain(deps: Deps, iri: str) -> bool:
    found = await policy_for(deps, iri)
    return found is not None and found.severity == "suspend"


def key_ids_of(headers: Mapping[str, str]) -> list[str]:
    """keyIds named by a cavage `Signature` or an RFC 9421 `Signature-Input` header (unverified)."""
    text = f"{headers.get('signature', '')[:8192]} {headers.get('signature-input', '')[:8192]}"
    return _KEY_ID_RE.findall(text)[:4]


async def check_inbound(deps: Deps, kind: str, actor_id: str, headers: Mapping[str, str]) -> None:
    """Refuse (403) before any key fetch or write: suspended domains, suspended actors."""
    for iri in [actor_id, *key_ids_of(headers)]:
        if await is_suspended_domain(deps, iri):
            raise Refused("this server does not accept activities from your domain")
    if kind not in ALLOWED_WHEN_SUSPENDED and actor_id in await suspended_actors(deps):
        raise Refused("this account is suspended here")


async def needs_approval(deps: Deps, actor: Actor) -> bool:
    """Follows from a silenced (limited) actor or domain wait for the member's approval."""
    if actor.local:
        return False
    found = await policy_for(deps, actor.ap_id)
    if found is not None and found.severity == "silence":
        return True
    return actor.id in await silenced_actors(deps)


# --- member blocks: the one predicate ----------------------------------------------------------------


def _hosts(iris: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for iri in iris:
        if (host := host_of_iri(iri)) is not None:
            found.update(domain_candidates(host))
    return found


async def blocked_for(
    deps: Deps, recipients: Iterable[int], iris: Iterable[str], *, actor: str | None = None
) -> bool:
    """Whether an activity touching `iris` must not reach the local actors `recipients` (db ids).

    True when a recipient blocks any of `iris` (the account or its domain), or when a local
    account among `iris` (mentioned, replied to, addressed) blocks `actor` (the sender).
    Mutes do not count: they hide, they do not refuse.
    """
    owners = {r for r in recipients if r}
    involved = [i for i in dict.fromkeys(iris) if isinstance(i, str) and not is_public(i)][:MAX_IRIS]
    if owners and involved:
        match = Q(target__ap_id__in=involved) | Q(target_domain__in=sorted(_hosts(involved)))
        if await ActorBlock.filter(match, owner_id__in=owners, kind="block").exists():
            return True
    if actor is None:
        return False
    local_ids = [i for i in involved if deps.urls.is_local(i)]
    if not local_ids:
        return False
    match = Q(target__ap_id=actor) | Q(target_domain__in=sorted(_hosts([actor])))
    return await ActorBlock.filter(
        match, owner__ap_id__in=local_ids, owner__local=True, kind="block"
    ).exists()


async def blocks_between(a: Actor, b: Actor) -> bool:
    """Either of the two blocks the other (account or domain)."""
    for owner, target in ((a, b), (b, a)):
        hosts = sorted(_hosts([target.ap_id]))
        match = Q(target_id=target.id) | Q(target_domain__in=hosts)
        if await ActorBlock.filter(match, owner_id=owner.id, kind="block").exists():
            return True
    return False


async def ensure_no_block(a: Actor, b: Actor) -> None:
    """ServiceError when a block stands between `a` and `b` (follow, join, RSVP, invite, mention)."""
    if await blocks_between(a, b):
        raise ServiceError("You cannot interact with this account.")


async def hidden_author_ids(viewer: Actor, author_ids: Iterable[int]) -> set[int]:
    """Among `author_ids`, those `viewer` blocks or mutes (account or domain)."""
    wanted = set(author_ids)
    if not wanted:
        return set()
    rows = await ActorBlock.filter(owner_id=viewer.id).values("target_id", "target_domain")
    ids = {r["target_id"] for r in rows if r["target_id"]}
    domains = {r["target_domain"] for r in rows if r["target_domain"]}
    hidden = wanted & ids
    if domains:
        for row in await Actor.filter(id__in=wanted - hidden, local=False).values("id", "ap_id"):
            if _hosts([row["ap_id"]]) & domains:
                hidden.add(row["id"])
    return hidden


# --- the processing-path gate ------------------------------------------------------------------------


def _object_documents(activity: JSON) -> list[JSON]:
    inner = activity.get("object")
    return [inner] if isinstance(inner, dict) else []


def _tag_hrefs(document: JSON) -> list[str]:
    tags = document.get("tag")
    hrefs = []
    for tag in as_list(tags)[:50]:
        if isinstance(tag, dict) and (href := get_id(tag.get("href"))) is not None:
            hrefs.append(href)
    return hrefs


def involved_iris(activity: JSON) -> list[str]:
    """Every IRI an activity touches: actor, object and its author, inReplyTo, to/cc/audience, tags."""
    iris: list[str] = [i for i in [get_id(activity.get("actor")), get_id(activity.get("object"))] if i]
    for document in [activity, *_object_documents(activity)]:
        for key in ("to", "cc", "bto", "bcc", "audience"):
            iris += ids_of(document.get(key), limit=100)
        iris += _tag_hrefs(document)
        for key in ("attributedTo", "inReplyTo", "target"):
            if (found := get_id(document.get(key))) is not None:
                iris.append(found)
    return list(dict.fromkeys(iris))[:MAX_IRIS]


async def _authors_of(iris: list[str]) -> tuple[list[str], list[int]]:
    """Authors (ap ids) of stored notes among `iris`, and the db ids of the local ones."""
    rows = await Note.filter(ap_id__in=iris[:MAX_IRIS]).select_related("author")
    return [n.author.ap_id for n in rows], [n.author_id for n in rows if n.author.local]


async def inbound_refused(
    deps: Deps, actor: Actor, activity: JSON, recipient: str | None, *, blocks_exist: bool | None = None
) -> str | None:
    """Why a stored activity must be dropped before its handler runs, or None.

    Local recipients are the personal-inbox owner, every local account the activity addresses,
    mentions or targets, and the local authors of notes it refers to. `blocks_exist`: whether
    any block exists, when the caller already knows (the inbox worker asks once per batch).
    """
    if actor.local or get_type(activity) in NEVER_BLOCKED:
        return None
    if not await policies(deps):
        if blocks_exist is None:
            blocks_exist = await ActorBlock.exists()
        if not blocks_exist:
            return None  # nothing to enforce: the usual case on a small server costs no query
    iris = involved_iris(activity)
    authors, local_authors = await _authors_of(iris)
    iris = list(dict.fromkeys(iris + authors))
    for iri in iris:
        if iri != actor.ap_id and not deps.urls.is_local(iri) and await is_suspended_domain(deps, iri):
            return "touches a suspended domain"
    local_iris = [i for i in iris if deps.urls.is_local(i)] + ([recipient] if recipient else [])
    locals_ = await Actor.filter(ap_id__in=local_iris[:MAX_IRIS], local=True).values("id")
    recipients = {int(row["id"]) for row in locals_} | set(local_authors)
    if await blocked_for(deps, recipients, [actor.ap_id, *iris], actor=actor.ap_id):
        return "blocked"
    return None

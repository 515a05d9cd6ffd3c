"""Processing of queued inbox items: one module per activity type, dispatched by a table.

Each handler first checks (origin, ownership, addressing — protocol §6.2) and then applies.
Unknown types are accepted and ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

from fediverse_net.activitypub.parse import get_type
from fediverse_net.db.models import InboxItem
from fediverse_net.deps import Deps
from fediverse_net.logs import event
from fediverse_net.services import moderation
from fediverse_net.services.handlers import (
    announce,
    block,
    context,
    create,
    delete,
    flag,
    follow,
    join,
    responses,
    undo,
    update,
)

log = logging.getLogger("fediverse_net.federation")
Handler = Callable[[context.Incoming], Awaitable[None]]

HANDLERS: Final[Mapping[str, Handler]] = {
    "Follow": follow.handle,
    "Accept": responses.handle_accept,
    "Reject": responses.handle_reject,
    "Undo": undo.handle,
    "Create": create.handle,
    "Update": update.handle,
    "Delete": delete.handle,
    "Block": block.handle,
    "Flag": flag.handle,
    "Join": join.handle_join,
    "Leave": join.handle_leave,
    "Announce": announce.handle,
}


async def process_inbox_item(deps: Deps, item: InboxItem, batch: context.Batch | None = None) -> None:
    """Apply one stored activity. Raises on transient failure (the worker retries).

    `batch`: what the worker preloaded for the items claimed together (context.preload).
    """
    handler = HANDLERS.get(get_type(item.payload) or "")
    if handler is None:
        event(log, "inbox ignored", activity=item.activity_id, type=item.type)
        return
    incoming = await context.load(deps, item, batch)
    if incoming is None:
        event(log, "inbox dropped", activity=item.activity_id, reason="actor unavailable or suspended")
        return
    # Blocks and domain policies apply to every IRI the activity touches (security matrix row 36).
    refused = await moderation.inbound_refused(
        deps,
        incoming.actor,
        incoming.activity,
        item.recipient,
        blocks_exist=batch.blocks_exist if batch is not None else None,
    )
    if refused is not None:
        event(log, "inbox dropped", activity=item.activity_id, reason=refused)
        return
    await handler(incoming)
    event(log, "inbox processed", activity=item.activity_id, type=item.type, actor=item.actor_ap_id)

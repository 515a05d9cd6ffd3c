"""Incoming Flag (protocol §5.8; security matrix row 20): a report in the admins' queue, capped,
only about our own members and posts, never shown to the reported member."""

from __future__ import annotations

from fediverse_net.services.handlers.context import Incoming
from fediverse_net.services.reports import receive_flag


async def handle(inc: Incoming) -> None:
    if inc.local or inc.item.refetch:
        return
    await receive_flag(inc.deps, inc.actor, inc.activity)

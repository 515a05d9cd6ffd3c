"""The whole route table."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from fediverse_net.web import (
    activitypub,
    group_admin,
    group_ap,
    groups,
    inbox,
    media,
    moderation,
    pages,
    social,
    wellknown,
)


def routes() -> list[BaseRoute]:
    return [
        Route("/healthz", wellknown.healthz, name="healthz"),
        Route("/.well-known/webfinger", wellknown.webfinger, name="webfinger"),
        Route("/.well-known/host-meta", wellknown.host_meta, name="host_meta"),
        Route("/.well-known/host-meta.json", wellknown.host_meta, name="host_meta_json"),
        Route("/.well-known/nodeinfo", wellknown.nodeinfo_index, name="nodeinfo_index"),
        Route("/nodeinfo/{version}", wellknown.nodeinfo, name="nodeinfo"),
        Route("/actor", activitypub.instance_actor, name="instance_actor"),
        Route("/users/{handle}", activitypub.member, name="member"),
        Route("/inbox", inbox.inbox, methods=["POST"], name="shared_inbox"),
        Route("/actor/inbox", inbox.inbox, methods=["POST"], name="instance_inbox"),
        Route("/users/{handle}/inbox", inbox.inbox, methods=["POST"], name="member_inbox"),
        Route("/users/{handle}/{which:str}", activitypub.collection, name="member_collection"),
        Route("/notes/{token}", activitypub.note, name="note"),
        Route("/activities/{token}", activitypub.activity, name="activity"),
        Route("/media/{name}", media.serve, name="media"),
        *groups.routes(),
        *group_admin.routes(),
        *group_ap.routes(),
        *moderation.routes(),
        *social.routes(),
        *pages.routes(),
    ]

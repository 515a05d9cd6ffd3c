"""FakeFediverse: remote servers for tests, through an httpx MockTransport (no network).

It serves actor documents and keys by URL, records what we POST, and signs requests as a remote
actor with real keys and our real signing code, so the crypto path is never faked.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import httpx

from fediverse_net.activitypub.keys import SigningKey, generate_rsa_keypair, load_private_key
from fediverse_net.activitypub.signatures import sign_request
from fediverse_net.activitypub.vocab import ACTIVITY_CONTENT_TYPE, AS_CONTEXT, SECURITY_CONTEXT

_counter = itertools.count(1)


@lru_cache(maxsize=8)
def test_keypair(slot: int) -> tuple[str, str]:
    """RSA keys are slow to make: a few are shared by the whole test session."""
    return generate_rsa_keypair()


@dataclass
class RemoteActor:
    id: str
    username: str
    domain: str
    private_pem: str
    public_pem: str
    type: str = "Person"
    shared_inbox: str | None = None

    @property
    def inbox(self) -> str:
        return f"{self.id}/inbox"

    @property
    def key_id(self) -> str:
        return f"{self.id}#main-key"

    @property
    def key(self) -> SigningKey:
        return SigningKey(self.key_id, load_private_key(self.private_pem))

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "@context": [AS_CONTEXT, SECURITY_CONTEXT],
            "id": self.id,
            "type": self.type,
            "preferredUsername": self.username,
            "name": self.username.title(),
            "inbox": self.inbox,
            "outbox": f"{self.id}/outbox",
            "followers": f"{self.id}/followers",
            "following": f"{self.id}/following",
            "publicKey": {"id": self.key_id, "owner": self.id, "publicKeyPem": self.public_pem},
        }
        if self.shared_inbox:
            doc["endpoints"] = {"sharedInbox": self.shared_inbox}
        return doc


@dataclass
class FakeFediverse:
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    received: list[httpx.Request] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)

    def add_actor(
        self,
        username: str = "bob",
        domain: str = "remote.example",
        *,
        slot: int = 0,
        type: str = "Person",
        shared_inbox: bool = True,
    ) -> RemoteActor:
        private_pem, public_pem = test_keypair(slot)
        actor = RemoteActor(
            id=f"https://{domain}/users/{username}",
            username=username,
            domain=domain,
            private_pem=private_pem,
            public_pem=public_pem,
            type=type,
            shared_inbox=f"https://{domain}/inbox" if shared_inbox else None,
        )
        self.documents[actor.id] = actor.document()
        return actor

    def handle(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        if request.method == "POST":
            self.received.append(request)
            return httpx.Response(self.statuses.get(url, 202))
        self.fetched.append(url)
        if url in self.statuses:
            return httpx.Response(self.statuses[url])
        document = self.documents.get(url)
        if document is None:
            return httpx.Response(404)
        return httpx.Response(200, json=document, headers={"content-type": ACTIVITY_CONTENT_TYPE})

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def received_json(self, inbox: str | None = None) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.received if inbox is None or str(r.url) == inbox]

    def new_id(self, actor: RemoteActor, kind: str = "activity") -> str:
        return f"{actor.id}/{kind}/{next(_counter)}"

    async def post_signed(
        self,
        client: httpx.AsyncClient,
        path: str,
        activity: dict[str, Any],
        *,
        as_actor: RemoteActor,
        scheme: str = "draft-cavage",
        tamper: bool = False,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """POST `activity` to our inbox at `path`, signed by `as_actor` exactly as a peer would."""
        body = json.dumps(activity).encode()
        url = f"{client.base_url}".rstrip("/") + path
        signed = sign_request("POST", url, body, key=as_actor.key, scheme=scheme)  # type: ignore[arg-type]
        if tamper:
            body = body.replace(b"}", b' ,"x": 1}', 1) if b"}" in body else body + b" "
        signed.update(headers or {})
        return await client.post(path, content=body, headers=signed)

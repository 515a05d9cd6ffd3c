"""Federation core against independent implementations: follows both ways, notes both ways,
Undo, and refused tampered deliveries (issue "Federation core", Checks A and B).

The Fedify checks run once per first-knock scheme of the peer (draft-cavage, RFC 9421): the
peer signs its Follow/Undo/Create with that scheme, and verifies ours with Fedify's own code.
A local member acts through the HTML forms (WebSession), as a person would.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from fediverse_net.activitypub.digest import content_digest_header, digest_header
from fediverse_net.activitypub.keys import SigningKey, generate_rsa_keypair, load_private_key
from fediverse_net.activitypub.signatures import Scheme, sign_request
from tests.interop.harness import ServerProcess, unique_name
from tests.interop.web_session import WebSession, eventually, inbox_accepted

pytestmark = pytest.mark.interop
SCHEMES = ["draft-cavage", "rfc9421"]
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
AS_CONTEXT = "https://www.w3.org/ns/activitystreams"


@pytest.fixture(scope="module")
def server(interop_dir: Path) -> Iterator[ServerProcess]:
    """Our server for this module, as conftest's, except that every test's member signs up from
    127.0.0.1: the per-IP sign-up limit (10/h) is raised so that it does not answer 429."""
    with ServerProcess(interop_dir, env={"FEDINET_RATE_LIMIT_SIGNUP": "1000/1h"}) as process:
        yield process


@pytest.fixture
def member(server: ServerProcess) -> Iterator[WebSession]:
    """A fresh member of `server`, signed up (and so logged in) through /signup."""
    with WebSession.sign_up(server, unique_name("member")) as session:
        yield session


@pytest.fixture
def knock(request: pytest.FixtureRequest) -> str:
    """The Fedify peer's first-knock scheme in this test (its `fedify_peer` parameter)."""
    return str(request.node.callspec.params["fedify_peer"])


def verified_by_us(server: ServerProcess, activity_id: str, scheme: str) -> None:
    """Our inbox accepted the peer's activity, verifying its signature with `scheme` on the first
    knock (Fedify would otherwise have retried with the other scheme)."""
    # Log lines reach the file at the end of the server's event-loop turn (logs.py batches them),
    # so the peer may see our 202 a moment before the line is there: wait for it.
    entry = eventually(
        lambda: inbox_accepted(server).get(activity_id),
        lambda found: found is not None,
        f"{activity_id} accepted by our inbox",
        timeout=5.0,
    )
    assert entry is not None and entry["scheme"] == scheme, entry


def verified_by_fedify(event: dict[str, Any], signer: str) -> None:
    """Fedify accepted the delivery and its independent re-check says our signature holds."""
    sig = event["http_sig"]
    assert sig["verified"] is True, sig
    assert sig["key_owner"] == signer, sig
    assert sig["key_id"] == f"{signer}#main-key", sig


# --- A. Fedify ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fedify_peer", SCHEMES, indirect=True)
def test_fedify_follows_member_and_gets_signed_accept(server, member, fedify_peer, knock):
    """A1: the peer follows a local member; our Accept is signed and verified by Fedify."""
    since = fedify_peer.mark()
    follow = fedify_peer.follow(server.handle(member.name))
    verified_by_us(server, follow["follow_id"], knock)
    accept = fedify_peer.wait(type="Accept", object_id=follow["follow_id"], since=since)
    verified_by_fedify(accept, server.actor_url(member.name))
    assert accept["actor"] == server.actor_url(member.name)
    state = eventually(
        lambda: fedify_peer.following().get(server.actor_url(member.name), {}).get("state"),
        lambda s: s == "accepted",
        "the peer records its follow as accepted",
    )
    assert state == "accepted"
    eventually(member.followers_total, lambda n: n == 1, "followers totalItems is 1")
    assert fedify_peer.actor_id() in member.followers_page()


@pytest.mark.parametrize("fedify_peer", SCHEMES, indirect=True)
def test_member_follows_fedify_and_sees_it_accepted(server, member, fedify_peer):
    """A2: a member follows the peer from /search; the peer verifies our Follow and accepts."""
    since = fedify_peer.mark()
    member.follow(fedify_peer.handle())
    follow = fedify_peer.wait(type="Follow", actor=server.actor_url(member.name), since=since)
    verified_by_fedify(follow, server.actor_url(member.name))
    assert follow["object_id"] == fedify_peer.actor_id()
    eventually(member.following_total, lambda n: n == 1, "following totalItems is 1 (Accept processed)")
    assert member.relation(fedify_peer.handle()) == "accepted"
    assert server.actor_url(member.name) in fedify_peer.followers()["followers"]


@pytest.mark.parametrize("fedify_peer", SCHEMES, indirect=True)
def test_fedify_note_reaches_member_timeline(server, member, fedify_peer, knock):
    """A3: after following the peer, its Create(Note) to the member shows in the home timeline."""
    member.follow(fedify_peer.handle())
    eventually(member.following_total, lambda n: n == 1, "the follow of the peer is accepted")
    text = f"fedify says hello {uuid.uuid4().hex}"
    sent = fedify_peer.note(server.actor_url(member.name), f"<p>{text}</p>")
    verified_by_us(server, sent["create_id"], knock)
    eventually(member.timeline_html, lambda page: text in page, "the peer's note is in the home timeline")


@pytest.mark.parametrize("fedify_peer", SCHEMES, indirect=True)
def test_fedify_undo_follow_removes_follower(server, member, fedify_peer, knock):
    """A5: the peer's Undo(Follow) removes it from the member's followers."""
    since = fedify_peer.mark()
    follow = fedify_peer.follow(server.handle(member.name))
    fedify_peer.wait(type="Accept", object_id=follow["follow_id"], since=since)
    eventually(member.followers_total, lambda n: n == 1, "followers totalItems is 1")
    assert fedify_peer.actor_id() in member.followers_page()
    undo = fedify_peer.unfollow(server.handle(member.name))
    verified_by_us(server, undo["undo_id"], knock)
    eventually(member.followers_total, lambda n: n == 0, "followers totalItems back to 0 after Undo")
    assert fedify_peer.actor_id() not in member.followers_page()


@pytest.mark.parametrize("fedify_peer", SCHEMES, indirect=True)
def test_member_post_reaches_following_fedify_peer(server, member, fedify_peer):
    """A6: a public post of a member the peer follows is delivered, signed, to the peer."""
    since = fedify_peer.mark()
    follow = fedify_peer.follow(server.handle(member.name))
    fedify_peer.wait(type="Accept", object_id=follow["follow_id"], since=since)
    eventually(member.followers_total, lambda n: n == 1, "followers totalItems is 1")
    text = f"news for my followers {uuid.uuid4().hex}"
    member.post(text)
    create = fedify_peer.wait(type="Create", actor=server.actor_url(member.name), since=since)
    verified_by_fedify(create, server.actor_url(member.name))
    assert create["object_type"] == "Note"
    raw = create["raw"] if isinstance(create["raw"], dict) else json.loads(create["raw"])
    assert text in raw["object"]["content"]
    assert PUBLIC in raw["object"]["to"] + raw["object"].get("cc", [])


# --- B. bovine ----------------------------------------------------------------------------------


def test_bovine_follows_member_and_gets_verified_accept(server, member, bovine_peer):
    """B: bovine follows a member; bovine verifies our Accept (draft-cavage, signer = actor)."""
    since = bovine_peer.mark()
    follow = bovine_peer.follow(server.handle(member.name))
    accept = bovine_peer.wait(type="Accept", object_id=follow["follow_id"], since=since)
    assert accept["key_owner"] == server.actor_url(member.name)
    assert accept["spec"] == "draft-cavage"
    eventually(member.followers_total, lambda n: n == 1, "followers totalItems is 1")
    eventually(
        lambda: bovine_peer.following()[server.actor_url(member.name)]["state"],
        lambda state: state == "accepted",
        "bovine records its follow as accepted",
    )


def test_member_follows_bovine_and_sees_it_accepted(server, member, bovine_peer):
    """B: a member follows bovine's actor; bovine verifies the Follow and accepts it."""
    since = bovine_peer.mark()
    member.follow(bovine_peer.handle())
    follow = bovine_peer.wait(type="Follow", actor=server.actor_url(member.name), since=since)
    assert follow["key_owner"] == server.actor_url(member.name)
    eventually(member.following_total, lambda n: n == 1, "following totalItems is 1 (Accept processed)")
    assert member.relation(bovine_peer.handle()) == "accepted"
    assert server.actor_url(member.name) in bovine_peer.followers()["followers"]


# --- A4. tampered bodies -----------------------------------------------------------------------


class FakeActor:
    """A Person we control, served on another loopback port: its key signs what we deliver."""

    def __init__(self, name: str = "mallory") -> None:
        private_pem, self.public_pem = generate_rsa_keypair()
        self.received: queue.Queue[dict[str, Any]] = queue.Queue()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.actor_id = f"{self.origin}/users/{name}"
        self.name = name
        self.key = SigningKey(key_id=f"{self.actor_id}#main-key", private_key=load_private_key(private_pem))
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def document(self) -> dict[str, Any]:
        return {
            "@context": [AS_CONTEXT, "https://w3id.org/security/v1"],
            "id": self.actor_id,
            "type": "Person",
            "preferredUsername": self.name,
            "name": "Mallory",
            "inbox": f"{self.actor_id}/inbox",
            "outbox": f"{self.actor_id}/outbox",
            "followers": f"{self.actor_id}/followers",
            "publicKey": {"id": self.key.key_id, "owner": self.actor_id, "publicKeyPem": self.public_pem},
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(
                self, status: int, body: bytes = b"", content_type: str = "application/activity+json"
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path.split("?")[0] == urlpath(fake.actor_id):
                    self._send(200, json.dumps(fake.document()).encode())
                else:
                    self._send(404, b'{"error": "not found"}', "application/json")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with contextlib.suppress(ValueError):
                    fake.received.put(json.loads(body))
                self._send(202)

        return Handler

    def __enter__(self) -> FakeActor:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def wait_for(self, kind: str, timeout: float = 20.0) -> dict[str, Any]:
        """The next activity of type `kind` delivered to the fake actor's inbox."""
        try:
            while True:
                activity = self.received.get(timeout=timeout)
                if activity.get("type") == kind:
                    return activity
        except queue.Empty:
            raise AssertionError(f"no {kind} delivered to {self.actor_id} within {timeout:.0f} s") from None

    def new_id(self) -> str:
        return f"{self.origin}/o/{uuid.uuid4()}"

    def sign(self, url: str, body: bytes, scheme: Scheme) -> dict[str, str]:
        return sign_request("POST", url, body, key=self.key, scheme=scheme)


def urlpath(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def post_raw(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(url, content=body, headers=headers, timeout=30)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_tampered_body_is_refused_and_not_stored(server, member, scheme):
    """A4: a delivery whose body changed after signing gets 401 and leaves no trace; the same
    delivery untampered is accepted (202) and shows in the timeline, so the path itself works."""
    inbox = f"{server.actor_url(member.name)}/inbox"
    with FakeActor() as fake:
        # The member follows the fake actor (by URL) so that its notes reach the home timeline.
        member.follow(fake.actor_id)
        follow = fake.wait_for("Follow")
        assert follow["actor"] == server.actor_url(member.name)
        accept = {"@context": AS_CONTEXT, "id": fake.new_id(), "type": "Accept", "actor": fake.actor_id}
        accept["object"] = follow["id"]
        body = json.dumps(accept).encode()
        answer = post_raw(inbox, body, fake.sign(inbox, body, scheme))
        assert answer.status_code == 202, answer.text
        eventually(member.following_total, lambda n: n == 1, "the follow of the fake actor is accepted")

        genuine, forged = f"genuine words {uuid.uuid4().hex}", f"forgery words {uuid.uuid4().hex}"
        note_id = fake.new_id()
        note = {
            "id": note_id,
            "type": "Note",
            "attributedTo": fake.actor_id,
            "content": f"<p>{genuine}</p>",
            "to": [server.actor_url(member.name)],
            "cc": [PUBLIC],
            "published": "2025-01-01T00:00:00Z",
        }
        create = {
            "@context": AS_CONTEXT,
            "id": f"{note_id}/activity",
            "type": "Create",
            "actor": fake.actor_id,
            "object": note,
            "to": note["to"],
            "cc": note["cc"],
        }
        body = json.dumps(create).encode()
        headers = fake.sign(inbox, body, scheme)
        tampered = body.replace(genuine.encode(), forged.encode())
        assert tampered != body and len(tampered) == len(body)

        # 1. The body changed, the headers as signed: the digest no longer matches.
        answer = post_raw(inbox, tampered, headers)
        assert answer.status_code == 401, (answer.status_code, answer.text)
        # 2. The body changed and its digest recomputed: the signature no longer matches.
        redigested = dict(headers)
        if scheme == "draft-cavage":
            redigested["Digest"] = digest_header(tampered)
        else:
            redigested["Content-Digest"] = content_digest_header(tampered)
        assert redigested != headers
        answer = post_raw(inbox, tampered, redigested)
        assert answer.status_code == 401, (answer.status_code, answer.text)
        # 3. The same delivery untampered goes through.
        answer = post_raw(inbox, body, headers)
        assert answer.status_code == 202, (answer.status_code, answer.text)

        page = eventually(member.timeline_html, lambda p: genuine in p, "the genuine note is in the timeline")
        assert forged not in page

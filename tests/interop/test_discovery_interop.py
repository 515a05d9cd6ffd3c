"""Instance foundation, checked by real peers: WebFinger -> actor -> key, NodeInfo, and the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.interop.harness import DEFAULT_PASSWORD, ROOT, unique_name

pytestmark = pytest.mark.interop
NODEINFO_21 = "http://nodeinfo.diaspora.software/ns/schema/2.1"


@pytest.fixture(scope="module")
def alice(server):
    server.create_user("alice")
    return "alice"


@pytest.mark.parametrize("fedify_peer", ["draft-cavage", "rfc9421"], indirect=True)
def test_fedify_resolves_handle_to_person_with_main_key(server, alice, fedify_peer):
    found = fedify_peer.lookup(server.handle(alice))
    assert found["type"] == "Person"
    assert found["id"] == server.actor_url(alice)
    assert found["public_key_id"] == f"http://{server.host}/users/alice#main-key"
    assert found["inbox"] == f"{server.actor_url(alice)}/inbox"
    assert found["preferred_username"] == "alice"


def test_fedify_unsigned_lookup(server, alice, fedify_peer):
    found = fedify_peer.lookup(server.handle(alice), signed=False)
    assert found["type"] == "Person"
    assert found["public_key_id"] == f"{server.actor_url(alice)}#main-key"


def test_fedify_lookup_by_actor_url(server, alice, fedify_peer):
    assert fedify_peer.lookup(server.actor_url(alice))["id"] == server.actor_url(alice)


def test_fedify_fetches_nodeinfo(server, fedify_peer):
    index = fedify_peer.fetch(server.url("/.well-known/nodeinfo"))["document"]
    hrefs = {link["rel"]: link["href"] for link in index["links"]}
    assert hrefs[NODEINFO_21] == server.url("/nodeinfo/2.1")
    document = fedify_peer.fetch(hrefs[NODEINFO_21], signed=False)["document"]
    assert document["version"] == "2.1"
    assert document["protocols"] == ["activitypub"]


def test_bovine_resolves_handle(server, alice, bovine_peer):
    found = bovine_peer.lookup(server.handle(alice))
    assert found["type"] == "Person"
    assert found["id"] == server.actor_url(alice)
    assert found["object"]["publicKey"]["id"] == f"{server.actor_url(alice)}#main-key"
    assert found["object"]["publicKey"]["owner"] == server.actor_url(alice)


def test_user_create_twice_fails_with_one_line_error(server):
    name = unique_name("dup")
    server.create_user(name)
    again = server.cli("user", "create", name, input=DEFAULT_PASSWORD + "\n")
    assert again.returncode != 0
    assert again.stderr.strip().startswith("error: ")
    assert len(again.stderr.strip().splitlines()) == 1, again.stderr
    assert "Traceback" not in again.stderr


@pytest.mark.parametrize("args", [[], ["serve"], ["user", "create"]], ids=["top", "serve", "user-create"])
def test_help_exits_zero(args):
    script = Path(sys.executable).with_name("fediverse-net")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "fediverse_net"]
    result = subprocess.run([*command, *args, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "usage: fediverse-net" in result.stdout

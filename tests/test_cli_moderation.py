"""The moderation commands of the CLI: `domain block|unblock|list`, `member suspend|unsuspend`.

Each test runs `fediverse_net.cli.main([...])` against a fresh SQLite database in a temp data
dir, exactly as an admin would from a shell (after `migrate`).
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from tortoise import Tortoise

from fediverse_net.cli import main
from fediverse_net.db import tortoise_config
from fediverse_net.db.models import Actor, AuditLog, DomainBlock


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite://{tmp_path}/db.sqlite3"
    monkeypatch.setenv("FEDINET_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FEDINET_DATABASE_URL", url)
    monkeypatch.setenv("FEDINET_DOMAIN", "fedi.test")
    monkeypatch.setenv("FEDINET_RUN_WORKERS", "false")
    assert main(["migrate"]) == 0
    return url


def query(url: str, body):
    async def run():
        await Tortoise.init(config=tortoise_config(url), _enable_global_fallback=True)
        try:
            return await body()
        finally:
            await Tortoise.close_connections()

    return asyncio.run(run())


def create_user(monkeypatch: pytest.MonkeyPatch, handle: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery staple\n"))
    assert main(["user", "create", handle]) == 0


async def _blocks():
    return {row.domain: row for row in await DomainBlock.all()}


def test_domain_block_list_unblock(cli_env, capsys):
    assert main(["domain", "block", "Evil.Example"]) == 0
    assert "evil.example: suspend" in capsys.readouterr().out
    assert main(["domain", "block", "https://spam.example/x", "--severity", "silence", "--reject-media"]) == 0
    capsys.readouterr()
    blocks = query(cli_env, _blocks)
    assert blocks["evil.example"].severity == "suspend"
    assert blocks["spam.example"].severity == "silence" and blocks["spam.example"].reject_media

    assert main(["domain", "list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert "evil.example\tsuspend" in listed
    assert "spam.example\tsilence\treject-media" in listed

    assert main(["domain", "unblock", "evil.example"]) == 0
    assert "evil.example: unblocked" in capsys.readouterr().out
    assert set(query(cli_env, _blocks)) == {"spam.example"}
    assert main(["domain", "list"]) == 0
    assert "evil.example" not in capsys.readouterr().out


def test_domain_block_refuses_bad_input(cli_env, capsys):
    assert main(["domain", "block", "not a domain!"]) == 1
    assert "error:" in capsys.readouterr().err
    assert main(["domain", "block", "fedi.test"]) == 1  # our own domain
    assert "error:" in capsys.readouterr().err
    assert query(cli_env, _blocks) == {}
    with pytest.raises(SystemExit):
        main(["domain", "block", "x.example", "--severity", "nuke"])


def test_member_suspend_and_unsuspend(cli_env, capsys, monkeypatch):
    create_user(monkeypatch, "carol")
    capsys.readouterr()

    async def carol():
        return await Actor.get(handle="carol", local=True)

    assert main(["member", "suspend", "@Carol", "--reason", "spam"]) == 0
    assert capsys.readouterr().out.strip() == "@carol is suspended"
    assert query(cli_env, carol).suspended is True

    assert main(["member", "unsuspend", "carol"]) == 0
    assert capsys.readouterr().out.strip() == "@carol is reinstated"
    assert query(cli_env, carol).suspended is False

    async def audit():
        return list(await AuditLog.all().order_by("id").values_list("action", flat=True))

    assert query(cli_env, audit) == ["member.suspend", "member.unsuspend"]


def test_member_suspend_of_unknown_member_fails(cli_env, capsys):
    assert main(["member", "suspend", "nobody"]) == 1
    assert "no such member" in capsys.readouterr().err
    assert main(["member", "unsuspend", "nobody"]) == 1
    assert "error:" in capsys.readouterr().err

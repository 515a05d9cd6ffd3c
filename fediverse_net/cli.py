"""The `fediverse-net` command: serve, worker, migrate, user, status.

Errors are one clear line on stderr and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from tortoise import Tortoise

from fediverse_net import __version__
from fediverse_net.config import ConfigError, Settings
from fediverse_net.db import tortoise_config


class CLIError(Exception):
    """Shown as `error: <message>` with exit status 1."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fediverse-net",
        description="A federated community server. Configured by FEDINET_* environment variables.",
    )
    parser.add_argument("--version", action="version", version=f"fediverse-net {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="migrate, then serve the web app (with workers unless disabled)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    serve.add_argument(
        "--no-workers", action="store_true", help="do not run delivery/inbox workers in-process"
    )
    serve.add_argument("--no-migrate", action="store_true", help="do not apply migrations before serving")

    worker = sub.add_parser("worker", help="run delivery and inbox workers only (for larger installs)")
    worker.add_argument("--once", action="store_true", help="process what is due now, then exit")

    sub.add_parser("migrate", help="create or upgrade the database schema")
    sub.add_parser("status", help="show configuration, database and queue status")

    user = sub.add_parser("user", help="manage member accounts")
    user_sub = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    create = user_sub.add_parser("create", help="create a member; the password is read from stdin")
    create.add_argument("name", help="handle: 1-30 of a-z, 0-9, _")
    create.add_argument("--admin", action="store_true", help="make the member an instance admin")
    create.add_argument("--display-name", default="", help="display name")
    user_sub.add_parser("list", help="list member accounts")

    group = sub.add_parser("group", help="manage groups")
    group_sub = group.add_subparsers(dest="group_command", required=True, metavar="ACTION")
    group_create = group_sub.add_parser("create", help="create a group owned by a member")
    group_create.add_argument("name", help="handle: 1-30 of a-z, 0-9, _ (shares the namespace of members)")
    group_create.add_argument("--owner", required=True, help="handle of the member who becomes its admin")
    group_create.add_argument("--join-mode", choices=["open", "approval", "invite"], default="open")
    group_create.add_argument("--display-name", default="", help="display name (default: the handle)")
    group_create.add_argument("--description", default="", help="what the group is about (Markdown)")
    group_create.add_argument("--posting", choices=["members", "followers", "moderators"], default="members")
    group_create.add_argument("--visibility", choices=["public", "unlisted"], default="public")
    group_sub.add_parser("list", help="list groups")
    rotate = user_sub.add_parser(
        "rotate-key", help="give a member a new key pair (same key id), announced signed with the old key"
    )
    rotate.add_argument("name", help="the member's handle")
    _moderation_parsers(sub)
    return parser


def _moderation_parsers(sub: Any) -> None:
    domain = sub.add_parser("domain", help="instance domain blocks (moderation)")
    domain_sub = domain.add_subparsers(dest="domain_command", required=True, metavar="ACTION")
    block = domain_sub.add_parser("block", help="suspend or limit a domain and its subdomains")
    block.add_argument("host")
    block.add_argument("--severity", choices=["suspend", "silence", "noop"], default="suspend")
    block.add_argument("--reject-media", action="store_true", help="do not show their pictures")
    block.add_argument("--reject-reports", action="store_true", help="ignore their reports")
    block.add_argument("--comment", default="", help="a note for the admins")
    domain_sub.add_parser("unblock", help="lift a domain block").add_argument("host")
    domain_sub.add_parser("list", help="list domain blocks")
    member = sub.add_parser("member", help="suspend or reinstate a member (moderation)")
    member_sub = member.add_subparsers(dest="member_command", required=True, metavar="ACTION")
    suspend = member_sub.add_parser("suspend", help="suspend a member (federated as Update suspended)")
    suspend.add_argument("name")
    suspend.add_argument("--reason", default="")
    member_sub.add_parser("unsuspend", help="reinstate a suspended member").add_argument("name")


async def _moderation(settings: Settings, args: argparse.Namespace) -> int:
    from fediverse_net.deps import Deps
    from fediverse_net.services import instance_admin
    from fediverse_net.services.errors import ServiceError

    deps = Deps(settings=settings)
    try:
        if args.command == "domain" and args.domain_command == "block":
            row = await instance_admin.block_domain(
                deps,
                None,
                args.host,
                args.severity,
                reject_media=args.reject_media,
                reject_reports=args.reject_reports,
                comment=args.comment,
            )
            print(f"{row.domain}: {row.severity}")
        elif args.command == "domain" and args.domain_command == "unblock":
            await instance_admin.unblock_domain(deps, None, args.host)
            print(f"{args.host}: unblocked")
        elif args.command == "domain":
            for row in await instance_admin.domain_blocks():
                media = "reject-media" if row.reject_media else ""
                reports = "reject-reports" if row.reject_reports else ""
                print(f"{row.domain}\t{row.severity}\t{media} {reports}".rstrip())
        elif args.member_command == "suspend":
            actor = await instance_admin.suspend_member(deps, None, args.name, args.reason)
            print(f"@{actor.handle} is suspended")
        else:
            actor = await instance_admin.unsuspend_member(deps, None, args.name)
            print(f"@{actor.handle} is reinstated")
    except ServiceError as exc:
        raise CLIError(str(exc)) from None
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_environ()
        return _dispatch(args, settings)
    except (CLIError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "serve":
        return _serve(args, settings)
    if args.command == "worker":
        return _run_db(settings, lambda: _worker(settings, once=args.once))
    if args.command == "migrate":
        _run_migrations(settings)
        print("database is up to date")
        return 0
    if args.command == "status":
        return _run_db(settings, lambda: _status(settings))
    if args.command == "user" and args.user_command == "create":
        password = _read_password()
        return _run_db(settings, lambda: _user_create(settings, args, password))
    if args.command == "group":
        return _run_db(settings, lambda: _group_command(settings, args))
    if args.command == "user" and args.user_command == "list":
        return _run_db(settings, _user_list)
    if args.command == "user" and args.user_command == "rotate-key":
        return _run_db(settings, lambda: _user_rotate_key(settings, args.name))
    if args.command in ("domain", "member"):
        return _run_db(settings, lambda: _moderation(settings, args))
    raise CLIError(f"unknown command {args.command}")


def _run_migrations(settings: Settings) -> None:
    from tortoise.migrations.api import migrate

    settings.data_dir.mkdir(parents=True, exist_ok=True)

    async def run() -> None:
        try:
            await migrate(config=tortoise_config(settings.database_url))
        except OSError as exc:
            raise CLIError(f"cannot reach the database: {exc}") from None
        finally:
            await Tortoise.close_connections()

    asyncio.run(run())


def _run_db(settings: Settings, body: Callable[[], Awaitable[int]]) -> int:
    async def run() -> int:
        try:
            await Tortoise.init(config=tortoise_config(settings.database_url), _enable_global_fallback=True)
        except OSError as exc:
            raise CLIError(f"cannot reach the database: {exc}") from None
        try:
            return await body()
        finally:
            await Tortoise.close_connections()

    return asyncio.run(run())


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from fediverse_net import logs
    from fediverse_net.app import create_app

    if not args.no_migrate:
        _run_migrations(settings)
    logs.configure(settings.log_level)
    app = create_app(settings, run_workers=False if args.no_workers else None)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        timeout_graceful_shutdown=10,
        server_header=False,
    )
    uvicorn.Server(config).run()
    return 0


async def _worker(settings: Settings, *, once: bool) -> int:
    from fediverse_net import logs
    from fediverse_net.app import build_client
    from fediverse_net.deps import Deps
    from fediverse_net.services.members import ensure_instance_actor
    from fediverse_net.workers.runner import WorkerRunner

    logs.configure(settings.log_level)
    deps = Deps(settings=settings, client=build_client(settings))
    await ensure_instance_actor(settings)
    runner = WorkerRunner(deps)
    try:
        if once:
            await runner.run_pending()
        else:
            # Graceful shutdown: SIGTERM/SIGINT stop claiming; leases cover anything cut short.
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, lambda: asyncio.ensure_future(runner.stop()))
            await runner.run_forever()
    finally:
        await deps.http().aclose()
    return 0


def _read_password() -> str:
    if sys.stdin.isatty():
        import getpass

        password = getpass.getpass("Password: ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise CLIError("no password given on stdin")
    return password


async def _user_create(settings: Settings, args: argparse.Namespace, password: str) -> int:
    from fediverse_net.services.errors import ServiceError
    from fediverse_net.services.members import NewMember, create_member

    try:
        account = await create_member(
            settings,
            NewMember(
                handle=args.name, password=password, display_name=args.display_name, is_admin=args.admin
            ),
        )
    except ServiceError as exc:
        raise CLIError(str(exc)) from None
    await account.fetch_related("actor")
    print(f"created @{account.actor.username}@{settings.domain}{' (admin)' if account.is_admin else ''}")
    return 0


async def _group_command(settings: Settings, args: argparse.Namespace) -> int:
    from fediverse_net.db.models import Actor, Group
    from fediverse_net.services.errors import ServiceError
    from fediverse_net.services.groups.core import GroupInput, create_group, member_count

    if args.group_command == "list":
        rows = await Group.all().select_related("actor").order_by("id")
        for row in rows:
            count = await member_count(row.actor)
            print(f"{row.actor.username}\t{row.actor.name}\t{row.join_mode}\t{count} members")
        if not rows:
            print("no groups yet", file=sys.stderr)
        return 0
    owner = await Actor.filter(handle=args.owner.lstrip("@").lower(), type="Person", local=True).first()
    if owner is None:
        raise CLIError(f"no member called {args.owner!r}")
    form = GroupInput(
        name=args.display_name or args.name,
        description=args.description,
        join_mode=args.join_mode,
        posting=args.posting,
        visibility=args.visibility,
    )
    try:
        actor = await create_group(settings, args.name, owner, form)
    except ServiceError as exc:
        raise CLIError(str(exc)) from None
    print(f"created group @{actor.username}@{settings.domain} ({args.join_mode}), admin @{owner.username}")
    return 0


async def _user_list() -> int:
    from fediverse_net.db.models import Account

    rows = await Account.all().select_related("actor").order_by("id")
    for account in rows:
        flags = [f for f, on in (("admin", account.is_admin), ("pending", not account.approved)) if on]
        print(f"{account.actor.username}\t{account.actor.name}\t{','.join(flags)}")
    if not rows:
        print("no members yet", file=sys.stderr)
    return 0


async def _status(settings: Settings) -> int:
    from fediverse_net.db.models import Account, Actor, Delivery, InboxItem

    info: dict[str, Any] = {
        "version": __version__,
        "origin": settings.origin,
        "database": settings.database_url.split("@")[-1],
        "registration": settings.registration_mode,
        "members": await Account.all().count(),
        "remote actors": await Actor.filter(local=False).count(),
        "inbox pending": await InboxItem.filter(state="pending").count(),
        "deliveries pending": await Delivery.filter(state="pending").count(),
        "deliveries failed": await Delivery.filter(state="failed").count(),
    }
    width = max(len(k) for k in info)
    for key, value in info.items():
        print(f"{key:<{width}}  {value}")
    return 0


async def _user_rotate_key(settings: Settings, name: str) -> int:
    from fediverse_net.db.models import Actor
    from fediverse_net.deps import Deps
    from fediverse_net.services.actor_lifecycle import rotate_key

    actor = await Actor.filter(handle=name.strip().lstrip("@").lower(), local=True, deleted_at=None).first()
    if actor is None or actor.type != "Person":
        raise CLIError(f"no member called {name!r}")
    await rotate_key(Deps(settings=settings), actor)
    print(f"new key for @{actor.username}@{settings.domain}; the Update is queued for its contacts")
    return 0

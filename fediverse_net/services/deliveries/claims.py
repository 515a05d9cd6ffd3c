"""Claiming due deliveries: one SQL statement leases a fair batch (`claim_due`).

Rows are ranked per host first, so one host's backlog never starves the others; hosts in backoff,
unavailable hosts (unless the row bypasses availability) and the caller's saturated hosts are
skipped, and a host whose breaker is half-open gets a single probe. The lease (`claimed_until`)
is what makes delivery at-least-once: a crashed worker's rows come back when it ends.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from tortoise.transactions import in_transaction

from fediverse_net.db.models import HostHealth
from fediverse_net.services.deliveries.policy import BREAKER_THRESHOLD, Claim

DEFAULT_LEASE: Final = timedelta(minutes=5)

_PLACEHOLDER = re.compile(r":([a-z_][a-z0-9_]*)")


def _render(sql: str, params: Mapping[str, Any], *, postgres: bool) -> tuple[str, list[Any]]:
    """Named `:name` placeholders to the dialect's positional ones ($n on PostgreSQL, ? on SQLite)."""
    values: list[Any] = []
    numbers: dict[str, int] = {}

    def placeholder(match: re.Match[str]) -> str:
        name = match.group(1)
        if not postgres:
            values.append(params[name])
            return "?"
        if name not in numbers:
            values.append(params[name])
            numbers[name] = len(values)
        return f"${numbers[name]}"

    return _PLACEHOLDER.sub(placeholder, sql), values


# One row per host while its breaker is half-open (the probe), `:per_host` otherwise. Ranking per
# host first is what keeps one host's backlog from starving the others.
_RANKED = """
    SELECT id FROM (
      SELECT d.id, d.next_attempt_at,
             ROW_NUMBER() OVER (PARTITION BY d.host ORDER BY d.next_attempt_at, d.id) AS rn,
             CASE WHEN COALESCE(h.consecutive_failures, 0) >= :threshold THEN 1 ELSE :per_host END AS quota
      FROM deliveries d LEFT JOIN host_health h ON h.host = d.host
      WHERE d.state = 'pending' AND d.next_attempt_at <= :now
        AND (d.claimed_until IS NULL OR d.claimed_until < :now)
        AND (h.host IS NULL OR ((NOT h.unavailable OR d.bypass_availability)
                                AND (h.backoff_until IS NULL OR h.backoff_until <= :now)))
        {excluded}
    ) ranked WHERE rn <= quota ORDER BY next_attempt_at, id LIMIT :pool"""
# SQLite has one writer: a single UPDATE … RETURNING is atomic.
_RETURNED = ("id", "activity_id", "inbox_url", "host", "attempts", "bypass_availability")
_CLAIM_SQLITE = "UPDATE deliveries SET claimed_until = :until WHERE id IN ({ranked}) RETURNING " + ", ".join(
    _RETURNED
)
# PostgreSQL: concurrent workers skip each other's locked rows (from a pool twice the batch, so a
# worker racing another still finds work); the CTE runs once.
_CLAIM_POSTGRES = """
    WITH picked AS (
      SELECT id FROM deliveries
      WHERE id IN ({ranked}) AND state = 'pending' AND (claimed_until IS NULL OR claimed_until < :now)
      ORDER BY next_attempt_at, id LIMIT :limit
      FOR UPDATE SKIP LOCKED)
    UPDATE deliveries SET claimed_until = :until FROM picked
    WHERE deliveries.id = picked.id RETURNING """ + ", ".join(f"deliveries.{name}" for name in _RETURNED)


def _claim_sql(
    *, postgres: bool, now: datetime, until: datetime, limit: int, per_host: int, exclude: list[str]
) -> tuple[str, list[Any]]:
    params: dict[str, Any] = {
        "now": now,
        "until": until,
        "limit": limit,
        "pool": 2 * limit if postgres else limit,
        "per_host": per_host,
        "threshold": BREAKER_THRESHOLD,
    }
    params.update({f"ex{i}": host for i, host in enumerate(exclude)})
    excluded = f"AND d.host NOT IN ({', '.join(f':ex{i}' for i in range(len(exclude)))})" if exclude else ""
    ranked = _RANKED.format(excluded=excluded)
    template = _CLAIM_POSTGRES if postgres else _CLAIM_SQLITE
    return _render(template.format(ranked=ranked), params, postgres=postgres)


async def claim_due(
    limit: int,
    now: datetime,
    lease: timedelta = DEFAULT_LEASE,
    *,
    per_host: int = 8,
    exclude_hosts: Collection[str] = (),
) -> list[Claim]:
    """Lease up to `limit` due deliveries (at most `per_host` per host) until `now + lease`.

    Skips hosts in backoff and unavailable hosts (unless the row bypasses availability) and
    `exclude_hosts` (the caller's saturated hosts). On PostgreSQL rows are locked with
    `FOR UPDATE SKIP LOCKED`, so concurrent workers never claim the same row; a crashed worker's
    rows come back when the lease ends (at-least-once delivery).
    """
    if limit <= 0:
        return []
    now = now.astimezone(UTC)
    until = now + lease
    async with in_transaction() as conn:
        sql, values = _claim_sql(
            postgres=conn.capabilities.dialect == "postgres",
            now=now,
            until=until,
            limit=limit,
            per_host=per_host,
            exclude=sorted(exclude_hosts),
        )
        rows = await conn.execute_query_dict(sql, values)
        if not rows:
            return []
        # A probe holds its host's breaker window for the lease: no second probe meanwhile.
        await (
            HostHealth.filter(
                host__in={str(row["host"]) for row in rows}, consecutive_failures__gte=BREAKER_THRESHOLD
            )
            .using_db(conn)
            .update(backoff_until=until)
        )
    claims = [
        Claim(
            id=int(row["id"]),
            activity_id=int(row["activity_id"]),
            inbox_url=str(row["inbox_url"]),
            host=str(row["host"]),
            attempts=int(row["attempts"]),
            bypass_availability=bool(row["bypass_availability"]),
            claimed_until=until,
        )
        for row in rows
    ]
    return sorted(claims, key=lambda claim: claim.id)

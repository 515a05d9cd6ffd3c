"""The group directory's text index: a trigram index over our groups, kept in sync by triggers.

`group_search` holds one row per `groups` row (same id): `document` is the group's name, handle
and description joined by spaces (what the directory's text box searches), `city`, and `tags`
as `|tag1|tag2|`; lower-cased on PostgreSQL, where the search is a LIKE (FTS5 folds case
itself). Triggers on `groups` and `actors` rewrite the row whenever one of them changes, so every
writer (the app, the CLI, bulk SQL in the benchmarks) keeps it right.

Why trigrams on both databases: the directory finds what people type anywhere in those texts,
case-insensitively ("hik" finds "Hikers", "garden" finds "Community gardening"), which is what it
always did. SQLite's FTS5 `trigram` tokenizer and PostgreSQL's `pg_trgm` GIN index answer exactly
that substring question from an index, so both databases give the same answers. A word index
(FTS5 unicode61, `tsvector`) would only find whole words or prefixes, and would stem and split
words differently on each database. The price: searches shorter than three characters cannot use
a trigram index and scan the (small) table; SQLite then folds ASCII case only.

Tables made by `Tortoise.generate_schemas` (the tests) do not get this: call `install` after it.
The migration `0003` calls the same function.
"""

from __future__ import annotations

from typing import Any, Final

from tortoise.backends.base.client import BaseDBAsyncClient

TABLE: Final = "group_search"
MAX_TEXT: Final = 200

# The document of one group: the same haystack the directory always searched.
_SQLITE_ROW: Final = """
INSERT INTO group_search (rowid, document, city, tags)
SELECT g.id, a.name || ' ' || a.username || ' ' || g.description, g.city,
       '|' || COALESCE((SELECT group_concat(t.value, '|') FROM json_each(g.tags) AS t), '') || '|'
FROM groups AS g JOIN actors AS a ON a.id = g.actor_id
"""

SQLITE_DDL: Final[tuple[str, ...]] = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS group_search USING fts5(document, city, tags, tokenize = 'trigram')",
    "CREATE TRIGGER IF NOT EXISTS group_search_insert AFTER INSERT ON groups BEGIN "
    f"{_SQLITE_ROW} WHERE g.id = new.id; END",
    "CREATE TRIGGER IF NOT EXISTS group_search_update AFTER UPDATE ON groups BEGIN "
    f"DELETE FROM group_search WHERE rowid = old.id; {_SQLITE_ROW} WHERE g.id = new.id; END",
    "CREATE TRIGGER IF NOT EXISTS group_search_delete AFTER DELETE ON groups BEGIN "
    "DELETE FROM group_search WHERE rowid = old.id; END",
    # Renaming a group's actor changes its document; other actor updates do not touch the index.
    "CREATE TRIGGER IF NOT EXISTS group_search_actor AFTER UPDATE OF name, username ON actors "
    "WHEN old.name IS NOT new.name OR old.username IS NOT new.username BEGIN "
    "DELETE FROM group_search WHERE rowid IN (SELECT id FROM groups WHERE actor_id = new.id); "
    f"{_SQLITE_ROW} WHERE g.actor_id = new.id; END",
    # Groups that existed before the index (an upgraded database).
    f"{_SQLITE_ROW} WHERE g.id NOT IN (SELECT rowid FROM group_search)",
)

POSTGRES_DDL: Final[tuple[str, ...]] = (
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE TABLE IF NOT EXISTS group_search ("
    " group_id BIGINT PRIMARY KEY REFERENCES groups (id) ON DELETE CASCADE,"
    " document TEXT NOT NULL, city TEXT NOT NULL, tags TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS group_search_document_trgm ON group_search USING gin (document gin_trgm_ops)",
    "CREATE INDEX IF NOT EXISTS group_search_city_trgm ON group_search USING gin (city gin_trgm_ops)",
    "CREATE INDEX IF NOT EXISTS group_search_tags_trgm ON group_search USING gin (tags gin_trgm_ops)",
    """
    CREATE OR REPLACE FUNCTION group_search_refresh(p_group_id BIGINT) RETURNS void
    LANGUAGE sql AS $$
        INSERT INTO group_search (group_id, document, city, tags)
        SELECT g.id, lower(a.name || ' ' || a.username || ' ' || g.description), lower(g.city),
               '|' || COALESCE((
                   SELECT string_agg(t.value, '|')
                   FROM jsonb_array_elements_text(
                       CASE WHEN jsonb_typeof(g.tags::jsonb) = 'array' THEN g.tags::jsonb
                            ELSE '[]'::jsonb END
                   ) AS t(value)
               ), '') || '|'
        FROM groups AS g JOIN actors AS a ON a.id = g.actor_id
        WHERE g.id = p_group_id
        ON CONFLICT (group_id) DO UPDATE
        SET document = EXCLUDED.document, city = EXCLUDED.city, tags = EXCLUDED.tags
    $$
    """,
    """
    CREATE OR REPLACE FUNCTION group_search_on_group() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM group_search_refresh(NEW.id);
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE OR REPLACE FUNCTION group_search_on_actor() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM group_search_refresh(g.id) FROM groups AS g WHERE g.actor_id = NEW.id;
        RETURN NULL;
    END
    $$
    """,
    # Rows of deleted groups go with them (ON DELETE CASCADE above).
    "DROP TRIGGER IF EXISTS group_search_group ON groups",
    "CREATE TRIGGER group_search_group AFTER INSERT OR UPDATE ON groups "
    "FOR EACH ROW EXECUTE FUNCTION group_search_on_group()",
    "DROP TRIGGER IF EXISTS group_search_actor ON actors",
    "CREATE TRIGGER group_search_actor AFTER UPDATE OF name, username ON actors FOR EACH ROW "
    "WHEN (OLD.name IS DISTINCT FROM NEW.name OR OLD.username IS DISTINCT FROM NEW.username) "
    "EXECUTE FUNCTION group_search_on_actor()",
    "SELECT group_search_refresh(g.id) FROM groups AS g "
    "WHERE NOT EXISTS (SELECT 1 FROM group_search AS s WHERE s.group_id = g.id)",
    # Statistics now, so the planner uses the trigram indexes before autovacuum gets to it.
    "ANALYZE group_search",
)

SQLITE_DROP: Final[tuple[str, ...]] = (
    "DROP TRIGGER IF EXISTS group_search_actor",
    "DROP TRIGGER IF EXISTS group_search_delete",
    "DROP TRIGGER IF EXISTS group_search_update",
    "DROP TRIGGER IF EXISTS group_search_insert",
    "DROP TABLE IF EXISTS group_search",
)

POSTGRES_DROP: Final[tuple[str, ...]] = (
    "DROP TRIGGER IF EXISTS group_search_actor ON actors",
    "DROP TRIGGER IF EXISTS group_search_group ON groups",
    "DROP FUNCTION IF EXISTS group_search_on_actor()",
    "DROP FUNCTION IF EXISTS group_search_on_group()",
    "DROP TABLE IF EXISTS group_search",
    "DROP FUNCTION IF EXISTS group_search_refresh(BIGINT)",
)


def _is_postgres(conn: BaseDBAsyncClient) -> bool:
    return conn.capabilities.dialect == "postgres"


async def install(conn: BaseDBAsyncClient) -> None:
    """Create the index, its triggers and the rows of existing groups (idempotent).

    One statement per call: SQLite's `executescript` would commit a surrounding transaction,
    and trigger bodies contain semicolons that naive statement splitting would cut.
    """
    for statement in POSTGRES_DDL if _is_postgres(conn) else SQLITE_DDL:
        await conn.execute_query(statement)


async def uninstall(conn: BaseDBAsyncClient) -> None:
    """Drop the index and its triggers (the migration's way back)."""
    for statement in POSTGRES_DROP if _is_postgres(conn) else SQLITE_DROP:
        await conn.execute_query(statement)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _fts_phrase(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


# What the directory shows of each group, and its accepted members (computed for the page only).
_LISTING: Final = (
    "SELECT g.id, a.ap_id, a.username, a.domain, a.name, a.url, a.summary, g.tags, g.city, g.area, "
    "g.join_mode, (SELECT COUNT(*) FROM group_memberships AS m "
    "WHERE m.group_id = g.actor_id AND m.state = 'accepted') AS members "
    "FROM ({page}) AS page JOIN groups AS g ON g.id = page.id JOIN actors AS a ON a.id = g.actor_id "
    "ORDER BY a.name, a.id"
)


async def listed_groups(
    conn: BaseDBAsyncClient, *, text: str = "", city: str = "", tag: str = "", limit: int = 200
) -> list[dict[str, Any]]:
    """Listed (public) groups whose document contains `text`, whose city contains `city` (both
    case-insensitive, anywhere) and which carry the tag `tag` (exactly), by name, at most `limit`.

    Empty filters do not filter; deleted or suspended group actors are left out. Each row has the
    columns of `_LISTING`. With no text filter the name order comes from the index
    actors(type, name, id), so the query stops after `limit` groups instead of sorting them all.
    """
    postgres = _is_postgres(conn)

    def mark(n: int) -> str:  # the n-th parameter (numbered, so the order of values is explicit)
        return f"${n}" if postgres else f"?{n}"

    values: list[object] = []
    found: list[str] = []  # conditions on the search table
    fts: list[str] = []  # SQLite: FTS5 column filters, ANDed into one MATCH
    filters = (("document", text.lower()), ("city", city.lower()), ("tags", f"|{tag}|" if tag else ""))
    for column, wanted in filters:
        if not wanted:
            continue
        if postgres:
            # The row is stored lower-cased: LIKE on it is several times cheaper than ILIKE,
            # which lower-cases every row it tests when the planner prefers a scan.
            values.append(f"%{_like_escape(wanted)}%")
            found.append(f"{column} LIKE {mark(len(values))}")
        elif len(wanted) >= 3:
            fts.append(f"{column} : {_fts_phrase(wanted)}")
        else:  # too short for a trigram: a scan of the search table, which LIKE does
            values.append(f"%{_like_escape(wanted)}%")
            found.append(f"{column} LIKE {mark(len(values))} ESCAPE '\\'")
    if fts:
        values.append(" AND ".join(fts))
        found.append(f"group_search MATCH {mark(len(values))}")
    values.append(limit)
    key = "group_id" if postgres else "rowid"
    matching = f" AND g.id IN (SELECT {key} FROM group_search WHERE {' AND '.join(found)})" if found else ""
    false = "false" if postgres else "0"
    # Only groups have settings rows, so `a.type = 'Group'` changes no answer. It is there to let
    # the planner walk actors(type, name, id) when nothing filters; with a filter, walking names
    # and testing each group would read most actor rows (SQLite chose that: 150-400 ms), while
    # the few matches from the search index sorted by name cost a few milliseconds.
    group_type = "" if found else "a.type = 'Group' AND "
    page = (
        "SELECT g.id FROM actors AS a JOIN groups AS g ON g.actor_id = a.id "
        f"WHERE {group_type}a.deleted_at IS NULL AND a.suspended = {false} "
        f"AND g.visibility = 'public'{matching} ORDER BY a.name, a.id LIMIT {mark(len(values))}"
    )
    return list(await conn.execute_query_dict(_LISTING.format(page=page), values))

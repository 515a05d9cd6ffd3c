"""Indexes for pages at scale (benchmark B12) and the group directory's trigram search index.

- notes (author_id, published, id, visibility): each followed author's newest notes for the
  home timeline straight from the index; replaces (author_id, published).
- actors (type, name, id): the group directory in name order without sorting every group.
- group_memberships (group_id, state) and (member_id, state): member counts, a member's groups.
- group_search: FTS5 trigram table (SQLite) or pg_trgm GIN-indexed table (PostgreSQL), kept in
  sync by triggers and filled from the existing groups (fediverse_net/db/group_search.py).
"""

from typing import Any

from tortoise import migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops

from fediverse_net.db import group_search


async def create_group_search(apps: Any, schema_editor: Any) -> None:
    await group_search.install(schema_editor.client)


async def drop_group_search(apps: Any, schema_editor: Any) -> None:
    await group_search.uninstall(schema_editor.client)


class Migration(migrations.Migration):
    dependencies = [("models", "0002_group_review_first_posts")]

    initial = False

    operations = [
        ops.AddIndex(
            model_name="Actor",
            index=Index(fields=["type", "name", "id"]),
        ),
        ops.AddIndex(
            model_name="Note",
            index=Index(fields=["author_id", "published", "id", "visibility"]),
        ),
        ops.RemoveIndex(
            model_name="Note",
            name=None,
            fields=["author_id", "published"],
        ),
        ops.AddIndex(
            model_name="Membership",
            index=Index(fields=["group_id", "state"]),
        ),
        ops.AddIndex(
            model_name="Membership",
            index=Index(fields=["member_id", "state"]),
        ),
        ops.RunPython(create_group_search, drop_group_search),
    ]

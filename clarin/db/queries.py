"""Named SQL queries loaded once from ``sql/queries/*.sql``.

A file holds blocks introduced by ``-- name: <identifier>``; everything up to the next marker is the
statement. Code refers to queries by name only (``query("get_user_by_username")``); the registry is
built at import time, so a missing or duplicated name fails at start-up, never at request time.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from types import MappingProxyType

_NAME_RE = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)
SQL_ROOT = Path(os.environ.get("CLARIN_SQL_DIR") or Path(__file__).resolve().parents[2] / "sql")


class QueryRegistryError(RuntimeError):
    pass


class Query(str):
    """The SQL text of one named statement; ``name`` and ``source`` say where it came from."""

    name: str
    source: str

    def __new__(cls, sql: str, name: str, source: str) -> Query:
        obj = super().__new__(cls, sql)
        obj.name = name
        obj.source = source
        return obj


def parse_query_file(text: str, source: str) -> dict[str, Query]:
    found: dict[str, Query] = {}
    markers = list(_NAME_RE.finditer(text))
    if not markers and text.strip():
        raise QueryRegistryError(f"{source}: no '-- name:' markers")
    for index, marker in enumerate(markers):
        end = markers[index + 1].start() if index + 1 < len(markers) else len(text)
        body = text[marker.end() : end].strip().rstrip(";").strip()
        name = marker.group(1)
        if not body:
            raise QueryRegistryError(f"{source}: query {name!r} is empty")
        if name in found:
            raise QueryRegistryError(f"{source}: query {name!r} defined twice")
        found[name] = Query(body, name, source)
    return found


def load_registry(root: Path = SQL_ROOT) -> MappingProxyType[str, Query]:
    queries: dict[str, Query] = {}
    directory = root / "queries"
    if not directory.is_dir():
        raise QueryRegistryError(f"query directory not found: {directory}")
    for path in sorted(directory.glob("*.sql")):
        for name, q in parse_query_file(path.read_text(encoding="utf-8"), path.name).items():
            if name in queries:
                raise QueryRegistryError(f"query {name!r} defined in {queries[name].source} and {path.name}")
            queries[name] = q
    return MappingProxyType(queries)


REGISTRY = load_registry()


def query(name: str) -> Query:
    """Resolve a named query; call it at module level so a typo fails when the module is imported."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise QueryRegistryError(f"unknown query {name!r} (not in {SQL_ROOT / 'queries'})") from None

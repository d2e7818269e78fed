"""The named-query registry: parsing, duplicate detection, lookups."""

from __future__ import annotations

from pathlib import Path

import pytest

from clarin.db import queries
from clarin.db.queries import Query, QueryRegistryError, load_registry, parse_query_file, query

TWO_BLOCKS = """\
-- name: first_query
-- a comment line stays part of the statement
SELECT id, name
FROM accounts
WHERE id = $1;

-- name: second_query
UPDATE accounts SET name = $2 WHERE id = $1
"""


def test_parse_handles_multiple_blocks() -> None:
    parsed = parse_query_file(TWO_BLOCKS, "demo.sql")
    assert list(parsed) == ["first_query", "second_query"]
    first = parsed["first_query"]
    assert isinstance(first, Query)
    assert first.name == "first_query"
    assert first.source == "demo.sql"
    assert first.startswith("-- a comment line")
    assert first.endswith("WHERE id = $1")  # trailing ';' and whitespace stripped
    assert str(parsed["second_query"]) == "UPDATE accounts SET name = $2 WHERE id = $1"


def test_parse_accepts_marker_spacing_variants() -> None:
    parsed = parse_query_file("--name: a\nSELECT 1\n--   name:   b_2  \nSELECT 2\n", "x.sql")
    assert {k: str(v) for k, v in parsed.items()} == {"a": "SELECT 1", "b_2": "SELECT 2"}


def test_parse_rejects_duplicate_names() -> None:
    with pytest.raises(QueryRegistryError, match="'dup' defined twice"):
        parse_query_file("-- name: dup\nSELECT 1\n-- name: dup\nSELECT 2\n", "dup.sql")


@pytest.mark.parametrize(
    "text",
    [
        "-- name: empty_one\n\n-- name: other\nSELECT 1\n",
        "-- name: other\nSELECT 1\n-- name: empty_one\n   \n",
        "-- name: empty_one\n;\n",
    ],
)
def test_parse_rejects_empty_bodies(text: str) -> None:
    with pytest.raises(QueryRegistryError, match="'empty_one' is empty"):
        parse_query_file(text, "empty.sql")


def test_parse_rejects_sql_without_markers_and_accepts_an_empty_file() -> None:
    with pytest.raises(QueryRegistryError, match="no '-- name:' markers"):
        parse_query_file("SELECT 1", "bare.sql")
    assert parse_query_file("  \n", "blank.sql") == {}


def test_unknown_query_name_raises() -> None:
    with pytest.raises(QueryRegistryError, match="no_such_query"):
        query("no_such_query")


def test_known_query_resolves_to_its_sql() -> None:
    q = query("migration_lock")
    assert q.name == "migration_lock"
    assert q.source == "migrations.sql"
    assert "pg_try_advisory_lock($1)" in q


def test_load_registry_rejects_a_name_defined_in_two_files(tmp_path: Path) -> None:
    (tmp_path / "queries").mkdir()
    (tmp_path / "queries" / "a.sql").write_text("-- name: shared\nSELECT 1\n-- name: only_a\nSELECT 2\n")
    (tmp_path / "queries" / "b.sql").write_text("-- name: shared\nSELECT 3\n")
    with pytest.raises(QueryRegistryError, match=r"'shared' defined in a\.sql and b\.sql"):
        load_registry(tmp_path)


def test_load_registry_reads_every_file_and_is_read_only(tmp_path: Path) -> None:
    (tmp_path / "queries").mkdir()
    (tmp_path / "queries" / "a.sql").write_text("-- name: q_a\nSELECT 1\n")
    (tmp_path / "queries" / "b.sql").write_text("-- name: q_b\nSELECT 2;\n")
    (tmp_path / "queries" / "notes.txt").write_text("not sql, ignored")
    registry = load_registry(tmp_path)
    assert dict(registry) == {"q_a": "SELECT 1", "q_b": "SELECT 2"}
    assert registry["q_b"].source == "b.sql"
    with pytest.raises(TypeError):
        registry["q_c"] = Query("SELECT 3", "q_c", "x.sql")  # type: ignore[index]


def test_load_registry_requires_the_directory(tmp_path: Path) -> None:
    with pytest.raises(QueryRegistryError, match="query directory not found"):
        load_registry(tmp_path)


def test_loaded_registry_matches_the_sql_files() -> None:
    """Every block of every shipped file is registered, under its own file as source."""
    directory = queries.SQL_ROOT / "queries"
    expected: dict[str, str] = {}
    for path in sorted(directory.glob("*.sql")):
        for name in parse_query_file(path.read_text(encoding="utf-8"), path.name):
            expected[name] = path.name
    assert expected, "no shipped queries found"
    assert {name: q.source for name, q in queries.REGISTRY.items()} == expected


def test_every_named_query_is_used() -> None:
    """A statement nothing runs is dead weight that still looks authoritative (one outlived the send path it
    served); each name must appear, quoted, in the service code or the bench scripts."""
    root = Path(__file__).resolve().parent.parent
    sources = [path.read_text() for folder in ("clarin", "bench") for path in (root / folder).rglob("*.py")]
    text = "\n".join(sources)
    unused = sorted(name for name in load_registry() if f'"{name}"' not in text and f"'{name}'" not in text)
    assert unused == []

"""README's configuration table and the environment the code reads agree, both ways: a variable cannot be
added without a row, and a row cannot outlive its variable.

"Read" means: looked up by ``clarin.config.load_settings`` (recorded at run time with an environment that
notes every lookup, in development and production, plus the literal names in config.py's ``_get/_int/...``
calls so that a lookup hidden behind a short-circuit still counts) or by ``os.environ`` / ``os.getenv`` with a
literal name (or a module constant holding one) anywhere else under ``clarin/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from clarin.config import load_settings
from tests import support

README = support.ROOT / "README.md"
NAME_RE = re.compile(r"`([A-Z][A-Z0-9_]{2,})`")
CONFIG_CALL_RE = re.compile(r"_(?:get|int|bool|float)\(env, \"([A-Z][A-Z0-9_]+)\"")
ENVIRON_RE = re.compile(r"(?:environ\.get\(|environ\[|getenv\()\s*(\"[A-Z][A-Z0-9_]+\"|[A-Z][A-Z0-9_]+)")


class RecordingEnv(dict[str, str]):
    """An environment that remembers every name asked for."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.asked: set[str] = set()

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.asked.add(key)
        return super().__contains__(key)

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("load_settings must look names up, not list the environment")


def settings_variables(tmp_path: Path) -> set[str]:
    names: set[str] = set()
    for values in ({"CLARIN_DATA_DIR": str(tmp_path)},
                   {"ENV": "production", "JWT_SECRET": "x" * 40, "CLARIN_DATA_DIR": str(tmp_path)}):
        env = RecordingEnv(values)
        load_settings(env)
        names |= env.asked
    names |= set(CONFIG_CALL_RE.findall((support.ROOT / "clarin" / "config.py").read_text()))
    return names


def other_variables() -> set[str]:
    """Names read through os.environ / os.getenv outside load_settings."""
    names: set[str] = set()
    for path in (support.ROOT / "clarin").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for token in ENVIRON_RE.findall(text):
            if token.startswith('"'):
                names.add(token.strip('"'))
            elif match := re.search(rf"^{token}\s*=\s*\"([A-Z][A-Z0-9_]+)\"", text, re.M):
                names.add(match.group(1))
    return names


def table_variables() -> set[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("\n## Configuration\n"):]
    section = section[: section.index("\n#", 1)]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names |= set(NAME_RE.findall(line.split("|")[1]))
    return names


def test_every_variable_load_settings_reads_has_a_row(tmp_path: Path) -> None:
    read = settings_variables(tmp_path)
    assert {"DATABASE_URL", "S3_ENDPOINT", "ENV", "KOMMO_BASE_URL"} <= read  # the recorder sees aliases too
    missing = sorted(read - table_variables())
    assert not missing, f"README.md's configuration table has no row for {missing}"


def test_every_variable_read_elsewhere_has_a_row() -> None:
    read = other_variables()
    assert "PROMETHEUS_MULTIPROC_DIR" in read  # through the module constant MULTIPROC_ENV
    missing = sorted(read - table_variables())
    assert not missing, f"README.md's configuration table has no row for {missing}"


def test_every_row_names_a_variable_that_is_read(tmp_path: Path) -> None:
    stale = sorted(table_variables() - settings_variables(tmp_path) - other_variables())
    assert not stale, f"README.md's configuration table documents variables nothing reads: {stale}"


LINK_RE = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_readme_and_docs_stand_alone() -> None:
    """No reference leaves the repository (the API contract is GET /api/openapi.json, not a sibling folder):
    no `../<folder>` path (a sibling of the checkout) and no link whose target resolves outside it.
    Traversal examples such as `../../etc/passwd` (rejected inputs) are text, not references."""
    root = support.ROOT.resolve()
    for path in [README, *sorted((support.ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        assert "shared/spec" not in text, path.name
        sibling = re.findall(r"`\.\./(?!\.\./)[^`]*`", text)
        assert not sibling, (path.name, sibling)
        for target in LINK_RE.findall(text):
            if not target.startswith(("http://", "https://", "mailto:")):
                assert (path.parent / target).resolve().is_relative_to(root), (path.name, target)


def test_readme_contents_links_every_document_and_every_link_resolves() -> None:
    text = README.read_text(encoding="utf-8")
    targets = set(LINK_RE.findall(text))
    documents = {f"docs/{p.name}" for p in (support.ROOT / "docs").glob("*.md")}
    assert not documents - targets, f"docs not linked from README's contents: {sorted(documents - targets)}"
    missing = sorted(t for t in targets if not t.startswith("http") and not (support.ROOT / t).exists())
    assert not missing, f"README links to files that do not exist: {missing}"

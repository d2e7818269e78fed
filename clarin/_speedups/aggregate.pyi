from collections.abc import Hashable, Iterable, Mapping
from typing import Any

def group_pairs(keys: Iterable[Hashable], values: Iterable[Any]) -> dict[Any, list[Any]]: ...
def group_rows(
    rows: Iterable[Mapping[str, Any]],
    key: str,
    fields: tuple[str, ...] | None = None,
) -> dict[Any, list[Any]]: ...
def count_by(keys: Iterable[Hashable]) -> dict[Any, int]: ...

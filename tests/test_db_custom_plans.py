"""``Database.fetch_custom`` / ``fetch_tuple_custom`` (clarin/db/pool.py) plan every execution for the values bound
to it: the searched contacts and chats pages rely on it (CUSTOM_PLAN_QUERIES), with no transaction around them.

How a test can see which plan ran, without EXPLAIN or pg_stat_statements: a custom plan is made with the bound
values as constants, so an IMMUTABLE function of a parameter is folded by the planner, called once, and every row
carries the same result; a generic plan keeps the parameter and calls the function once per row. The function
counts its calls in a session setting and returns the count. The ordinary prepared path is the control: there
PostgreSQL switches to the generic plan after five custom ones (cheaper here), which this test must see, or it
could not tell the two apart. Real PostgreSQL, one pooled connection.
"""

from __future__ import annotations

import asyncio
from typing import Any

from clarin.db.pool import Database
from clarin.db.queries import Query

# Session-local (pg_temp): gone with the connection, nothing left in the test database.
CALLS_FUNCTION = """
CREATE FUNCTION pg_temp.calls(x int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    PERFORM set_config('clarin_test.calls',
                       (coalesce(nullif(current_setting('clarin_test.calls', true), ''), '0')::int + 1)::text, false);
    RETURN current_setting('clarin_test.calls')::int;
END $$
"""
ROWS = 5
Q_CALLS = Query(f"SELECT pg_temp.calls($1::int) AS calls FROM generate_series(1, {ROWS}) AS g(i)",
                "test_calls", "tests/test_db_custom_plans.py")
# The same, folded into one row for the tuple variant: how many different counts the rows saw.
Q_DISTINCT = Query(f"SELECT count(DISTINCT pg_temp.calls($1::int)) AS calls FROM generate_series(1, {ROWS}) AS g(i)",
                   "test_distinct_calls", "tests/test_db_custom_plans.py")
Q_PREPARED = Query("SELECT count(*) AS n FROM pg_prepared_statements WHERE statement = $1",
                   "test_prepared", "tests/test_db_custom_plans.py")
RUNS = 8  # more than PostgreSQL's five custom plans before it may pick the generic one


def calls_per_run(rows: list[dict[str, Any]]) -> int:
    """How many times the function ran for one execution: 1 = folded at planning (custom plan)."""
    assert len(rows) == ROWS
    return len({row["calls"] for row in rows})


def test_fetch_custom_plans_each_execution_with_its_values(database: str) -> None:
    async def run() -> dict[str, Any]:
        db = Database(database, 2)
        try:
            async with db.connection() as conn:
                await conn.execute_statement(CALLS_FUNCTION)
                seen: dict[str, Any] = {
                    "custom": [calls_per_run(await conn.fetch_custom(Q_CALLS, [i])) for i in range(RUNS)],
                    "custom_tuple": [(await conn.fetch_tuple_custom(Q_DISTINCT, [i]) or (None,))[0]
                                     for i in range(RUNS)],
                    "left_prepared": [await conn.fetch_val(Q_PREPARED, [str(q)]) for q in (Q_CALLS, Q_DISTINCT)],
                }
                seen["prepared"] = [calls_per_run(await conn.fetch(Q_CALLS, [i])) for i in range(RUNS)]
                seen["prepared_tuple"] = [await conn.fetch_val(Q_DISTINCT, [i]) for i in range(RUNS)]
                seen["now_prepared"] = [await conn.fetch_val(Q_PREPARED, [str(q)]) for q in (Q_CALLS, Q_DISTINCT)]
            return seen
        finally:
            db.close()

    seen = asyncio.run(run())
    # fetch_custom / fetch_tuple_custom: a custom plan every time, however often one statement runs on a connection.
    assert seen["custom"] == [1] * RUNS, seen["custom"]
    assert seen["custom_tuple"] == [1] * RUNS, seen["custom_tuple"]
    # Control: a cached prepared statement goes generic after five executions (the function then runs per row).
    for control in ("prepared", "prepared_tuple"):
        assert seen[control][:5] == [1] * 5 and ROWS in seen[control][5:], (control, seen[control])
    # ... because they leave no prepared statement behind (the ordinary path keeps one per statement).
    assert (seen["left_prepared"], seen["now_prepared"]) == ([0, 0], [1, 1])

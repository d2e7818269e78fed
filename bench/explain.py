"""EXPLAIN (ANALYZE, BUFFERS) of every hot query on the seeded data (``python -m bench.explain``).

The SQL comes from the server's named-query registry (``clarin.db.queries.REGISTRY``), with realistic
parameters for the large account. Each query is run the way the server runs it: psqlpy prepares every
statement once per connection and re-executes it, so after five executions PostgreSQL may switch to the
*generic* plan. For each query we therefore ``PREPARE`` it, ``EXECUTE`` it five times, then
``EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE`` it ("server plan"), and also show the generic plan
(``plan_cache_mode = force_generic_plan``). Writes run inside a transaction that is rolled back.

Exit 1 when a server plan of an account-scoped query has a Seq Scan on leads, messages, contacts or
chats (or a query failed). Generic-plan seq scans are printed as warnings. ``--json FILE`` writes every
plan; ``-v`` prints the plan trees.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import DEFAULT_SEED, bench_dsn, exit_now, load_sql

HOT_TABLES = frozenset({"leads", "messages", "contacts", "chats"})
ACCT = "acct"


@dataclass
class Spec:
    label: str
    query: str
    params: Any  # callable(fixtures) -> list
    write: bool = False
    check: bool = True  # account-scoped: a Seq Scan on a hot table fails the run
    note: str = ""


def _u(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if value else None


SPECS: list[Spec] = [
    # -- leads (GET /api/leads paged, filtered, searched; compat board; one lead; writes) -------------------
    Spec("leads page", "leads_page", lambda f: [f[ACCT], None, None, None, 50, 0]),
    Spec("leads count", "leads_count", lambda f: [f[ACCT], None, None, None]),
    Spec("leads page ?stage_id", "leads_page", lambda f: [f[ACCT], None, f["stage"], None, 50, 0]),
    Spec("leads count ?stage_id", "leads_count", lambda f: [f[ACCT], None, f["stage"], None]),
    Spec("leads page ?pipeline_id", "leads_page", lambda f: [f[ACCT], f["pipeline"], None, None, 50, 0]),
    Spec("leads page ?tag_ids", "leads_page", lambda f: [f[ACCT], None, None, [f["tag"]], 50, 0]),
    Spec("leads count ?tag_ids", "leads_count", lambda f: [f[ACCT], None, None, [f["tag"]]]),
    Spec("leads page ?search=maría", "leads_page_search",
         lambda f: [f[ACCT], None, None, None, "%maría%", 50, 0]),
    Spec("leads count ?search=maría", "leads_count_search", lambda f: [f[ACCT], None, None, None, "%maría%"]),
    Spec("leads page ?search=5190 (phone)", "leads_page_search",
         lambda f: [f[ACCT], None, None, None, "%5190%", 50, 0]),
    Spec("leads page ?search=zzqx (no hit)", "leads_page_search",
         lambda f: [f[ACCT], None, None, None, "%zzqx%", 50, 0]),
    Spec("leads compat board (10k)", "leads_list_all", lambda f: [f[ACCT], 10_000]),
    Spec("lead get", "leads_get", lambda f: [f["lead"], f[ACCT]]),
    Spec("lead set stage", "leads_set_stage", lambda f: [f["lead"], f[ACCT], f["stage"]], write=True),
    Spec("lead create (upsert, default stage)", "leads_create",
         lambda f: [f[ACCT], "51700000002@s.whatsapp.net", "Bench", "51700000002", "", "bench", "",
                    None, None], write=True),
    Spec("lead create (upsert)", "leads_create",
         lambda f: [f[ACCT], "51700000001@s.whatsapp.net", "Bench", "51700000001", "", "bench", "",
                    f["pipeline"], f["stage"]], write=True),
    # -- contacts -----------------------------------------------------------------------------------------
    Spec("contacts page (total counted)", "contacts_page",
         lambda f: [f[ACCT], False, None, False, None, None, 50, 0, True]),
    Spec("contacts page (total cached)", "contacts_page",
         lambda f: [f[ACCT], False, None, False, None, None, 50, 0, False]),
    Spec("contacts page ?search=carmen", "contacts_page_search",
         lambda f: [f[ACCT], False, None, False, None, None, 50, 0, "%carmen%", True]),
    Spec("contacts page ?search=519 (phone)", "contacts_page_search",
         lambda f: [f[ACCT], False, None, False, None, None, 50, 0, "%519%", True]),
    Spec("contact tags (one contact's detail)", "contacts_tags_for_contacts", lambda f: [f[ACCT], f["contact_page"]]),
    # -- stats --------------------------------------------------------------------------------------------
    Spec("stats counters", "stats_account_counts", lambda f: [f[ACCT]]),
    # -- chats / messages (skipped while the queries do not exist) ------------------------------------------
    Spec("chats inbox page", "chats_page_inbox", lambda f: [f[ACCT], None, None, False, 50, 0]),
    Spec("chats page ?search=maría", "chats_page_search",
         lambda f: [f[ACCT], None, None, False, 50, 0, False, "%maría%"]),
    Spec("messages page (busiest chat)", "messages_page", lambda f: [f[ACCT], f["chat"], 50, 0]),
    Spec("messages page deep offset 5000", "messages_page", lambda f: [f[ACCT], f["chat"], 50, 5000],
         note="OFFSET paging: cost grows with the offset (keyset paging avoids it)"),
    Spec("messages keyset page", "messages_page_before",
         lambda f: [f[ACCT], f["chat"], 50, 0, f["cursor_ts"], f["cursor_id"]]),
]


# -- literal rendering for EXECUTE (bench-only: values come from our own fixtures) --------------------------
def literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        inner = ",".join('"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in value)
        return literal("{" + inner + "}")
    if isinstance(value, datetime):
        value = value.isoformat()
    return "'" + str(value).replace("'", "''") + "'"


def plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    out = [plan]
    for child in plan.get("Plans", []):
        out.extend(plan_nodes(child))
    return out


def describe(node: dict[str, Any]) -> str:
    text = node["Node Type"]
    if node.get("Index Name"):
        text += f" using {node['Index Name']}"
    if node.get("Relation Name"):
        text += f" on {node['Relation Name']}"
    return text


def seq_scans(plan: dict[str, Any]) -> list[str]:
    return [f"Seq Scan on {n['Relation Name']} (rows {n.get('Actual Rows', n.get('Plan Rows'))})"
            for n in plan_nodes(plan) if n["Node Type"] == "Seq Scan" and n.get("Relation Name") in HOT_TABLES]


def tree(plan: dict[str, Any], depth: int = 0) -> list[str]:
    timing = ""
    if "Actual Total Time" in plan:
        timing = f"  (actual {plan['Actual Total Time']:.3f} ms, rows {plan['Actual Rows']}, loops {plan['Actual Loops']})"
    lines = ["  " * depth + "-> " + describe(plan) + timing]
    for child in plan.get("Plans", []):
        lines.extend(tree(child, depth + 1))
    return lines


async def fixtures(conn: Any, seed: int) -> dict[str, Any]:
    sql = load_sql("admin")
    account = (await conn.execute(sql["bench_large_account"], [seed])).result()
    if not account:
        raise SystemExit(f"explain: the bench database holds no seed {seed} (run `clarin bench-seed`)")
    acct = uuid.UUID(account[0]["account_id"])
    fx = (await conn.execute(sql["bench_explain_fixtures"], [acct])).result()[0]
    cursor = (await conn.execute(sql["bench_explain_cursor"], [uuid.UUID(fx["busy_chat_id"])])).result()
    lead_page = [uuid.UUID(r["id"]) for r in (await conn.execute(sql["bench_explain_lead_page_ids"], [acct])).result()]
    board = (await conn.execute(sql["bench_sample_leads"], [acct, 1, 10_000])).result()
    contact_page = [uuid.UUID(r["id"]) for r in
                    (await conn.execute(sql["bench_explain_contact_page_ids"], [acct])).result()]
    return {
        ACCT: acct, "lead": _u(fx["lead_id"]), "stage": _u(fx["stage_id"]), "pipeline": _u(fx["pipeline_id"]),
        "tag": _u(fx["tag_id"]), "chat": _u(fx["busy_chat_id"]),
        "cursor_ts": cursor[0]["ts"] if cursor else None, "cursor_id": _u(cursor[0]["id"]) if cursor else None,
        "lead_page": lead_page, "lead_board": [uuid.UUID(r["id"]) for r in board], "contact_page": contact_page,
    }


async def explain_one(conn: Any, sql_text: str, args: list[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(server plan after 5 executions, generic plan), both with ANALYZE, inside a rolled-back transaction."""
    rendered = ", ".join(literal(a) for a in args)
    execute = f"EXECUTE bench_q({rendered})" if args else "EXECUTE bench_q"
    await conn.execute_batch("BEGIN")
    try:
        await conn.execute_batch(f"PREPARE bench_q AS {sql_text}")
        try:
            for _ in range(5):
                await conn.execute(execute, prepared=False)
            server = (await conn.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {execute}",
                                         prepared=False)).result()
            await conn.execute_batch("SET LOCAL plan_cache_mode = force_generic_plan")
            generic = (await conn.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {execute}",
                                          prepared=False)).result()
        finally:
            await conn.execute_batch("DEALLOCATE bench_q")
    finally:
        await conn.execute_batch("ROLLBACK")
    return _plan_of(server), _plan_of(generic)


def _plan_of(rows: list[dict[str, Any]]) -> dict[str, Any]:
    value = next(iter(rows[0].values()))
    if isinstance(value, str):
        value = json.loads(value)
    return value[0]


async def run(dsn: str, seed: int, verbose: bool, json_out: str | None) -> int:
    import psqlpy

    from clarin.db.queries import REGISTRY

    pool = psqlpy.ConnectionPool(dsn=dsn, max_db_pool_size=2)
    conn = await pool.connection()
    failures: list[str] = []
    warnings: list[str] = []
    report: list[dict[str, Any]] = []
    try:
        fx = await fixtures(conn, seed)
        print(f"{'query':<36} {'server plan (top → scans)':<78} {'exec ms':>8} {'plan ms':>8} {'jit ms':>7} "
              f"{'buf hit':>8} {'read':>6}")
        print("-" * 158)
        for spec in SPECS:
            sql_text = REGISTRY.get(spec.query)
            if sql_text is None:
                print(f"{spec.label:<36} (query {spec.query!r} is not in the registry yet — skipped)")
                report.append({"label": spec.label, "query": spec.query, "status": "missing"})
                continue
            try:
                server, generic = await explain_one(conn, str(sql_text), spec.params(fx))
            except Exception as exc:
                failures.append(f"{spec.label}: {exc}")
                print(f"{spec.label:<36} ERROR {exc}")
                report.append({"label": spec.label, "query": spec.query, "status": "error", "error": str(exc)})
                continue
            top = server["Plan"]
            scans = [describe(n) for n in plan_nodes(top)
                     if "Scan" in n["Node Type"] and n.get("Relation Name") in HOT_TABLES | {"lead_tags", "tags"}]
            shape = describe(top) + (" → " + "; ".join(dict.fromkeys(scans)) if scans else "")
            hit = top.get("Shared Hit Blocks", 0)
            read = top.get("Shared Read Blocks", 0)
            jit = server.get("JIT", {}).get("Timing", {}).get("Total", 0.0)
            print(f"{spec.label:<36} {shape[:78]:<78} {server['Execution Time']:>8.2f} {server['Planning Time']:>8.2f} "
                  f"{jit:>7.1f} {hit:>8} {read:>6}")
            if jit:
                warnings.append(f"{spec.label} ({spec.query}): JIT compilation {jit:.1f} ms of "
                                f"{server['Execution Time']:.1f} ms (jit_above_cost reached)")
            if len(shape) > 78:
                print(f"{'':<36} {shape[78:200]}")
            bad = seq_scans(top)
            generic_bad = seq_scans(generic["Plan"])
            if bad and spec.check:
                failures.append(f"{spec.label} ({spec.query}): {', '.join(bad)}")
            if generic_bad and not bad:
                warnings.append(f"{spec.label} ({spec.query}) generic plan: {', '.join(generic_bad)} "
                                f"({generic['Execution Time']:.1f} ms)")
            if spec.note:
                print(f"{'':<36} note: {spec.note}")
            if verbose:
                print("\n".join("    " + line for line in tree(top)))
                print(f"    generic plan ({generic['Execution Time']:.2f} ms):")
                print("\n".join("    " + line for line in tree(generic["Plan"])))
            report.append({"label": spec.label, "query": spec.query, "status": "ok", "server_plan": server,
                           "generic_plan": generic, "seq_scans": bad, "generic_seq_scans": generic_bad})
    finally:
        conn.close()
        pool.close()
        await asyncio.sleep(0.1)
    if json_out:
        Path(json_out).write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")  # noqa: ASYNC240
    print()
    for w in warnings:
        print(f"WARNING {w}")
    if failures:
        print(f"explain: FAILED — {len(failures)} problem(s):")
        for f in failures:
            print(f"  - {f}")
        return 1
    print(f"explain: OK — no sequential scan on {', '.join(sorted(HOT_TABLES))} in {len(report)} plans")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.explain", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("-v", "--verbose", action="store_true", help="print every plan tree")
    parser.add_argument("--json", default=None, help="write all plans to this file")
    args = parser.parse_args(argv)
    return asyncio.run(run(args.database_url or bench_dsn(), args.seed, args.verbose, args.json))


if __name__ == "__main__":
    exit_now(main())

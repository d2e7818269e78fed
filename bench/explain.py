"""EXPLAIN (ANALYZE, BUFFERS) of every hot query on the seeded data (``python -m bench.explain``).

The SQL comes from the server's named-query registry (``clarin.db.queries.REGISTRY``), with realistic
parameters for the large account. Each query is run the way the server runs it: psqlpy prepares every
statement once per connection and re-executes it, so after five executions PostgreSQL may switch to the
*generic* plan. For each query we therefore ``EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE`` it three ways:
its custom plan (``plan_cache_mode = force_custom_plan``), its generic plan (``force_generic_plan``), and the
plan the server settles on ("server plan": a fresh ``PREPARE``, five ``EXECUTE``, then the EXPLAIN). Each
runs inside a transaction that is rolled back (writes included). Blocks = shared hit + read of the plan.

Statements the server runs with custom plans only (unprepared, ``Database.fetch_custom``: the
``CUSTOM_PLAN_QUERIES`` sets of clarin/crm/contact_reads.py and clarin/messaging/chats.py, which the server's
dispatch reads too) are judged by their custom plan: it is the server plan; their generic plan is printed, not gated.

Exit 1 when a server plan of an account-scoped query has a Seq Scan on leads, messages, contacts or
chats, when a generic or server plan touches more than ``GENERIC_RATIO`` x the blocks of the custom plan
(+ ``GENERIC_SLACK_BLOCKS``: a catch-all statement that can flip to a bad generic plan, issue 17 goal 4),
or when a query failed. A spec whose statement is not in the registry is printed and skipped. Generic-plan
seq scans are printed as warnings. ``--json FILE`` writes every plan; ``-v`` prints the plan trees.
Point it at a database with ``--database-url`` or ``BENCH_DATABASE_URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import DEFAULT_SEED, bench_dsn, exit_now, load_sql
from clarin.config import Settings

HOT_TABLES = frozenset({"leads", "messages", "contacts", "chats"})
ACCT = "acct"
END = (datetime(9999, 12, 31, tzinfo=UTC), uuid.UUID(int=(1 << 128) - 1))  # lead_reads._END_KEY: no cursor
# The server's default TOTAL_COUNT_CAP (Settings.total_count_cap); the plans are judged at that cap.
COUNT_CAP = Settings().total_count_cap
CAP = COUNT_CAP + 1  # as lead_reads.filtered_total: a capped count reads at most this many rows


def CONTACTS_HEAD(f: dict[str, Any]) -> list[Any]:
    from clarin.crm.contact_reads import FIRST_KEY
    return [f[ACCT], False, 50, 0, *FIRST_KEY]


def CHATS_HEAD(f: dict[str, Any]) -> list[Any]:
    from clarin.messaging.chats import FIRST_KEY
    return [f[ACCT], 51, 0, *FIRST_KEY]


# Goal 4 of issue 17: a statement's generic plan (or the plan the server settles on after 5 executions) may
# touch at most GENERIC_RATIO x the blocks of its custom plan, plus a little slack for tiny plans.
GENERIC_RATIO = 3
GENERIC_SLACK_BLOCKS = 30


@dataclass
class Spec:
    label: str
    query: str
    params: Any  # callable(fixtures) -> list
    write: bool = False
    check: bool = True  # account-scoped: a Seq Scan on a hot table fails the run
    flip_check: bool = True  # generic/server plan vs custom plan (off only for O(offset) deep pages, see below)
    note: str = ""


def custom_plan_queries() -> frozenset[str]:
    """The statements the server runs with forced custom plans (its own dispatch sets, not a list kept here)."""
    from clarin.crm.contact_reads import CUSTOM_PLAN_QUERIES as CONTACTS
    from clarin.messaging.chats import CUSTOM_PLAN_QUERIES as CHATS
    return CONTACTS | CHATS


def _u(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if value else None


SPECS: list[Spec] = [
    # -- leads (GET /api/leads paged, filtered, searched; compat board; one lead; writes) -------------------
    # One statement per filter shape (sql/queries/leads.sql). END = no cursor (the service's sentinel key).
    Spec("leads page", "leads_page", lambda f: [f[ACCT], *END, 51, 0]),
    # OFFSET costs O(offset) in every plan; on a small account the custom plan sorts the whole account instead
    # (cheaper than a 5000-row walk), so "generic vs custom" says nothing here: the cursor spec is the gated one
    Spec("leads page deep offset 5000", "leads_page", lambda f: [f[ACCT], *END, 51, 5000], flip_check=False,
         note="OFFSET paging: cost grows with the offset (the cursor below is the O(page) way)"),
    Spec("leads page ?cursor (5000 deep)", "leads_page", lambda f: [f[ACCT], *f["lead_cursor"], 51, 0]),
    Spec("leads count (counters)", "leads_count_all", lambda f: [f[ACCT]]),
    Spec("leads page ?stage_id", "leads_page_stage", lambda f: [f[ACCT], *END, 51, 0, f["stage"], None]),
    Spec("leads count ?stage_id (capped)", "leads_count_stage", lambda f: [f[ACCT], CAP, f["stage"]]),
    Spec("leads count ?stage_id&pipeline_id (capped)", "leads_count_stage_pipeline",
         lambda f: [f[ACCT], CAP, f["stage"], f["pipeline"]]),
    Spec("leads page ?pipeline_id", "leads_page_pipeline", lambda f: [f[ACCT], *END, 51, 0, f["pipeline"]]),
    Spec("leads count ?pipeline_id (capped)", "leads_count_pipeline", lambda f: [f[ACCT], CAP, f["pipeline"]]),
    Spec("leads page ?tag_ids", "leads_page_tag", lambda f: [f[ACCT], *END, 51, 0, [f["tag"]], None, None]),
    Spec("leads count ?tag_ids=one (capped)", "leads_count_tag1", lambda f: [f[ACCT], CAP, f["tag"], None, None]),
    Spec("leads count ?tag_ids=several (capped)", "leads_count_tag", lambda f: [f[ACCT], CAP, [f["tag"]], None, None]),
    Spec("leads count ?search=maría (capped)", "leads_count_search",
         lambda f: [f[ACCT], CAP, "%maría%", None, None, None]),
    Spec("leads page ?search=maría (many)", "leads_page_search_many",
         lambda f: [f[ACCT], *END, 51, 0, "%maría%", None, None, None]),
    Spec("leads page ?search=maría (few)", "leads_page_search_few",
         lambda f: [f[ACCT], *END, 51, 0, "%maría%", None, None, CAP, None],
         note="the service takes this shape only when the capped count found <= the cap"),
    Spec("leads count ?search=5190 (capped)", "leads_count_search",
         lambda f: [f[ACCT], CAP, "%5190%", None, None, None]),
    Spec("leads page ?search=5190 (many)", "leads_page_search_many",
         lambda f: [f[ACCT], *END, 51, 0, "%5190%", None, None, None]),
    Spec("leads count ?search=zzqx (no hit)", "leads_count_search",
         lambda f: [f[ACCT], CAP, "%zzqx%", None, None, None]),
    Spec("leads page ?search=zzqx (few)", "leads_page_search_few",
         lambda f: [f[ACCT], *END, 51, 0, "%zzqx%", None, None, CAP, None]),
    Spec("leads compat board (10k)", "leads_list_all", lambda f: [f[ACCT], 10_000]),
    Spec("lead get", "leads_get", lambda f: [f["lead"], f[ACCT]]),
    Spec("lead set stage", "leads_set_stage", lambda f: [f["lead"], f[ACCT], f["stage"]], write=True),
    Spec("lead create (upsert, default stage)", "leads_create",
         lambda f: [f[ACCT], "51700000002@s.whatsapp.net", "Bench", "51700000002", "", "bench", "",
                    None, None], write=True),
    Spec("lead create (upsert)", "leads_create",
         lambda f: [f[ACCT], "51700000001@s.whatsapp.net", "Bench", "51700000001", "", "bench", "",
                    f["pipeline"], f["stage"]], write=True),
    # -- contacts (clarin/crm/contact_reads.py: head = account, is_group, limit, offset, cursor key) -------------
    Spec("contacts page (counters)", "contacts_page_unfiltered", lambda f: [*CONTACTS_HEAD(f)]),
    Spec("contacts page ?has_phone (total counted)", "contacts_page",
         lambda f: [*CONTACTS_HEAD(f), None, True, None, COUNT_CAP]),
    Spec("contacts page ?has_phone (total cached)", "contacts_page",
         lambda f: [*CONTACTS_HEAD(f), None, True, None, 0]),
    Spec("contacts page ?search=carmen", "contacts_page_search", lambda f: [*CONTACTS_HEAD(f), "%carmen%", COUNT_CAP]),
    Spec("contacts page ?search=519 (phone)", "contacts_page_search",
         lambda f: [*CONTACTS_HEAD(f), "%519%", COUNT_CAP]),
    Spec("contacts page ?search=zzqx (no hit)", "contacts_page_search",
         lambda f: [*CONTACTS_HEAD(f), "%zzqx%", COUNT_CAP]),
    Spec("contacts page ?search=carmen&has_phone", "contacts_page_search_filtered",
         lambda f: [*CONTACTS_HEAD(f), None, True, None, None, COUNT_CAP, "%carmen%"]),
    Spec("contact tags (one contact's detail)", "contacts_tags_for_contacts", lambda f: [f[ACCT], f["contact_page"]]),
    # -- stats --------------------------------------------------------------------------------------------
    Spec("stats counters", "stats_account_counts", lambda f: [f[ACCT]]),
    # -- chats (clarin/messaging/chats.py: head = account, limit + 1, offset, cursor key) / messages ------------
    Spec("chats inbox page", "chats_page_inbox_unfiltered", lambda f: [*CHATS_HEAD(f)]),
    Spec("chats page ?archived", "chats_page", lambda f: [*CHATS_HEAD(f), True, None, None, False, COUNT_CAP]),
    Spec("chats page ?search=maría", "chats_page_search",
         lambda f: [*CHATS_HEAD(f), False, None, None, False, COUNT_CAP, "%maría%"]),
    Spec("chats page ?search=5190 (phone)", "chats_page_search",
         lambda f: [*CHATS_HEAD(f), False, None, None, False, COUNT_CAP, "%5190%"]),
    Spec("chats page ?search=zzqx (no hit)", "chats_page_search",
         lambda f: [*CHATS_HEAD(f), False, None, None, False, COUNT_CAP, "%zzqx%"]),
    Spec("chats page ?search=maría&archived", "chats_page_search",
         lambda f: [*CHATS_HEAD(f), True, None, None, False, COUNT_CAP, "%maría%"]),
    Spec("messages page (busiest chat)", "messages_page", lambda f: [f[ACCT], f["chat"], 50, 0]),
    Spec("messages page deep offset 5000", "messages_page", lambda f: [f[ACCT], f["chat"], 50, 5000],
         note="OFFSET paging: cost grows with the offset (keyset paging avoids it)"),
    Spec("messages before_id lookup", "messages_cursor", lambda f: [f[ACCT], f["chat"], f["cursor_id"]]),
    Spec("messages keyset page", "messages_page_before",
         lambda f: [f[ACCT], f["chat"], 50, 0, f["cursor_ts"], f["cursor_id"]]),
    # every send (docs/NUMBER_HEALTH.md): is the chat answered (walks the busiest chat newest first), opened today
    Spec("send budget context (busiest chat)", "budget_send_context",
         lambda f: [f[ACCT], f["device"], f["chat_jid"]]),
    Spec("send budget reserve (default cold limits)", "budget_reserve",
         lambda f: [f["device"], f[ACCT], f["chat_jid"], "cold", 2, 20, 150], write=True),
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
    chat_device = (await conn.execute(sql["bench_explain_chat_device"], [acct, uuid.UUID(fx["busy_chat_id"])])).result()[0]
    lead_page = [uuid.UUID(r["id"]) for r in (await conn.execute(sql["bench_explain_lead_page_ids"], [acct])).result()]
    deep = (await conn.execute(sql["bench_explain_lead_cursor"], [acct])).result()
    lead_cursor = (deep[0]["created_at"], _u(str(deep[0]["id"]))) if deep else END
    board = (await conn.execute(sql["bench_sample_leads"], [acct, 1, 10_000])).result()
    contact_page = [uuid.UUID(r["id"]) for r in
                    (await conn.execute(sql["bench_explain_contact_page_ids"], [acct])).result()]
    return {
        ACCT: acct, "lead": _u(fx["lead_id"]), "stage": _u(fx["stage_id"]), "pipeline": _u(fx["pipeline_id"]),
        "tag": _u(fx["tag_id"]), "chat": _u(fx["busy_chat_id"]),
        "chat_jid": chat_device["chat_jid"], "device": _u(chat_device["device_id"]),
        "cursor_ts": cursor[0]["ts"] if cursor else None, "cursor_id": _u(cursor[0]["id"]) if cursor else None,
        "lead_page": lead_page, "lead_cursor": lead_cursor, "lead_board": [uuid.UUID(r["id"]) for r in board], "contact_page": contact_page,
    }


async def explain_one(conn: Any, sql_text: str, args: list[Any]) -> dict[str, dict[str, Any]]:
    """The custom plan, the generic plan and the server plan (after 5 executions), all with ANALYZE, each
    inside a rolled-back transaction: {"custom": ..., "generic": ..., "server": ...}."""
    rendered = ", ".join(literal(a) for a in args)
    execute = f"EXECUTE bench_q({rendered})" if args else "EXECUTE bench_q"
    explain = f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {execute}"
    plans: dict[str, dict[str, Any]] = {}
    await conn.execute_batch(f"PREPARE bench_q AS {sql_text}")
    try:
        for mode in ("force_custom_plan", "force_generic_plan"):
            await conn.execute_batch("BEGIN")
            try:
                await conn.execute_batch(f"SET LOCAL plan_cache_mode = {mode}")
                plans[mode.split("_")[1]] = _plan_of((await conn.execute(explain, prepared=False)).result())
            finally:
                await conn.execute_batch("ROLLBACK")
    finally:
        await conn.execute_batch("DEALLOCATE bench_q")
    # the server's way: a fresh prepared statement, five executions, then the plan PostgreSQL settled on
    await conn.execute_batch(f"PREPARE bench_q AS {sql_text}")
    try:
        await conn.execute_batch("BEGIN")
        try:
            for _ in range(5):
                await conn.execute(execute, prepared=False)
            plans["server"] = _plan_of((await conn.execute(explain, prepared=False)).result())
        finally:
            await conn.execute_batch("ROLLBACK")
    finally:
        await conn.execute_batch("DEALLOCATE bench_q")
    return plans


def blocks(plan: dict[str, Any]) -> int:
    """Shared buffers the plan touched (hit + read; the root node's counts include every child)."""
    top = plan["Plan"]
    return int(top.get("Shared Hit Blocks", 0)) + int(top.get("Shared Read Blocks", 0))


def plan_flip(custom: int, other: int) -> bool:
    """A generic/server plan that touches more than GENERIC_RATIO x (+ slack) the blocks of the custom plan."""
    return other > GENERIC_RATIO * custom + GENERIC_SLACK_BLOCKS


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
        custom_only = custom_plan_queries()
        print(f"{'query':<36} {'server plan (top → scans)':<70} {'exec ms':>8} {'plan ms':>8} {'jit ms':>7} "
              f"{'buf hit':>8} {'read':>6} {'custom':>8} {'generic':>8} {'server':>8}")
        print(f"{'':<36} {'':<70} {'':>8} {'':>8} {'':>7} {'':>8} {'':>6} {'(blocks: hit + read)':>26}")
        print("-" * 177)
        for spec in SPECS:
            sql_text = REGISTRY.get(spec.query)
            if sql_text is None:
                print(f"{spec.label:<36} (query {spec.query!r} is not in the registry — skipped)")
                report.append({"label": spec.label, "query": spec.query, "status": "missing"})
                continue
            try:
                plans = await explain_one(conn, str(sql_text), spec.params(fx))
            except Exception as exc:
                failures.append(f"{spec.label}: {exc}")
                print(f"{spec.label:<36} ERROR {exc}")
                report.append({"label": spec.label, "query": spec.query, "status": "error", "error": str(exc)})
                continue
            pinned = spec.query in custom_only
            if pinned:  # the server forces custom plans for it: the custom plan is the server plan
                plans["server"] = plans["custom"]
            server, generic, custom = plans["server"], plans["generic"], plans["custom"]
            top = server["Plan"]
            scans = [describe(n) for n in plan_nodes(top)
                     if "Scan" in n["Node Type"] and n.get("Relation Name") in HOT_TABLES | {"lead_tags", "tags"}]
            shape = describe(top) + (" → " + "; ".join(dict.fromkeys(scans)) if scans else "")
            hit = top.get("Shared Hit Blocks", 0)
            read = top.get("Shared Read Blocks", 0)
            jit = server.get("JIT", {}).get("Timing", {}).get("Total", 0.0)
            b_custom, b_generic, b_server = blocks(custom), blocks(generic), blocks(server)
            print(f"{spec.label:<36} {shape[:70]:<70} {server['Execution Time']:>8.2f} {server['Planning Time']:>8.2f} "
                  f"{jit:>7.1f} {hit:>8} {read:>6} {b_custom:>8} {b_generic:>8} {b_server:>8}")
            if jit:
                warnings.append(f"{spec.label} ({spec.query}): JIT compilation {jit:.1f} ms of "
                                f"{server['Execution Time']:.1f} ms (jit_above_cost reached)")
            if len(shape) > 70:
                print(f"{'':<36} {shape[70:190]}")
            bad = seq_scans(top)
            generic_bad = seq_scans(generic["Plan"])
            if bad and spec.check:
                failures.append(f"{spec.label} ({spec.query}): {', '.join(bad)}")
            if generic_bad and not bad and not pinned:
                warnings.append(f"{spec.label} ({spec.query}) generic plan: {', '.join(generic_bad)} "
                                f"({generic['Execution Time']:.1f} ms)")
            if pinned:
                print(f"{'':<36} custom plans only (CUSTOM_PLAN_QUERIES): generic plan {b_generic:,} blocks not gated")
            for name, other in (("generic", b_generic), ("server", b_server)):
                if spec.flip_check and not pinned and plan_flip(b_custom, other):
                    failures.append(f"{spec.label} ({spec.query}): {name} plan {other:,} blocks > "
                                    f"{GENERIC_RATIO} x custom plan {b_custom:,} + {GENERIC_SLACK_BLOCKS}")
            if spec.note:
                print(f"{'':<36} note: {spec.note}")
            if verbose:
                for name, plan in (("server", server), ("custom", custom), ("generic", generic)):
                    print(f"    {name} plan ({plan['Execution Time']:.2f} ms, {blocks(plan)} blocks):")
                    print("\n".join("    " + line for line in tree(plan["Plan"])))
            report.append({"label": spec.label, "query": spec.query, "status": "ok", "server_plan": server,
                           "generic_plan": generic, "custom_plan": custom, "blocks": {
                               "custom": b_custom, "generic": b_generic, "server": b_server},
                           "seq_scans": bad, "generic_seq_scans": generic_bad, "custom_plans_only": pinned})
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
    skipped = sum(1 for r in report if r["status"] == "missing")
    print(f"explain: OK — no sequential scan on {', '.join(sorted(HOT_TABLES))}, and no generic or server plan over "
          f"{GENERIC_RATIO} x its custom plan's blocks (+{GENERIC_SLACK_BLOCKS}), in {len(report) - skipped} "
          f"statements ({skipped} skipped: not in the registry)")
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

"""bench/profile.py folds py-spy stacks into the CPU buckets of bench/RESULTS.md. Pure logic, no server."""

from __future__ import annotations

from bench.profile import BUCKETS, Classifier, fold

HEAD = 'process 1:"python -m clarin serve";process 2:"python -m clarin serve";'
APP = "ClarinApp.__rsgi__ (clarin/http/server.py:148);ClarinApp.handle_http (clarin/http/server.py:160)"


def test_stacks_land_in_their_buckets() -> None:
    raw = "\n".join([
        f"{HEAD}{APP};_Executor.fetch (clarin/db/pool.py:40);Database._run (clarin/db/pool.py:153) 7",
        f"{HEAD}{APP};Response.send (clarin/http/response.py:24) 5",
        f"{HEAD}{APP};RedisHandle.guard (clarin/cache/redis_client.py:117);"
        "Redis.execute_command (redis/asyncio/client.py:600) 3",
        f"{HEAD}{APP};hydrate_leads (clarin/crm/lead_reads.py:50);UUID.__init__ (uuid.py:170) 4",
        f"{HEAD}{APP};observe_query (clarin/observability/metrics.py:150) 2",
        f"{HEAD}{APP};Logger.info (logging/__init__.py:1480) 1",
        f"{HEAD}{APP};get_lead (clarin/crm/leads_routes.py:81) 1",
        f"{HEAD}_run_once (asyncio/base_events.py:1900) 2",
        f"{HEAD} 6",  # a Rust thread holding the GIL
        "garbage line",
    ])
    buckets = fold(raw, Classifier())
    assert buckets == {"driver": 7, "granian/RSGI": 7, "Redis": 3, "row conv.": 4, "metrics": 2, "logging": 1,
                       "other": 1, "Rust (GIL)": 6}
    assert set(buckets) <= set(BUCKETS)


def test_the_pool_line_that_calls_result_is_row_conversion() -> None:
    classifier = Classifier()
    pool = (classifier.root / "clarin/db/pool.py").read_text().splitlines()
    result_line = next(i for i, text in enumerate(pool, 1) if ".result(" in text)
    assert classifier.frame(f"_Executor.fetch (clarin/db/pool.py:{result_line})") == "row conv."
    assert classifier.frame("uuid4 (uuid.py:723)") is None

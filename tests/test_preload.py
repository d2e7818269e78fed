"""The serving parent preloads what the workers import (clarin/preload.py) and stays fork-safe: one thread, no
neonize (Go runtime), no psqlpy/obstore (tokio), no clarin. A worker forked from it still imports the app and
finds the preloaded modules already there. Speed is reported by tests/test_worker_crash.py, not asserted here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PARENT = """
import json, os, sys
from clarin.preload import preload, thread_count
names = json.loads(sys.stdin.read())
loaded = preload(names)
report = {"loaded": loaded, "threads": thread_count(),
          "unsafe": sorted(m for m in ("neonize", "psqlpy", "obstore", "clarin.app", "clarin.state")
                           if m in sys.modules)}
read, write = os.pipe()
pid = os.fork()
if pid == 0:  # what a granian worker does first
    os.close(read)
    before = set(sys.modules)
    import clarin.app
    fresh = set(sys.modules) - before
    os.write(write, json.dumps({"app": hasattr(clarin.app, "app"), "fresh": len(fresh),
                                "neonize": "neonize" in sys.modules}).encode())
    os._exit(0)
os.close(write)
chunks = []
while chunk := os.read(read, 65536):
    chunks.append(chunk)
os.waitpid(pid, 0)
report["child"] = json.loads(b"".join(chunks))
print(json.dumps(report))
"""


def test_the_parent_preloads_without_threads_and_workers_still_import_the_app() -> None:
    names = json.loads(subprocess.run(
        [sys.executable, "-c", "import json; from clarin.preload import worker_modules; "
                               "print(json.dumps(worker_modules()))"],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=120).stdout)
    assert "redis.asyncio.client" in names and "httpx" in names
    assert not [n for n in names if n.split(".")[0] in ("neonize", "psqlpy", "obstore", "clarin")]

    result = subprocess.run([sys.executable, "-c", PARENT], input=json.dumps(names), cwd=ROOT,
                            capture_output=True, text=True, check=True, timeout=120)
    report = json.loads(result.stdout)
    assert report["threads"] == 1, report
    assert report["unsafe"] == [], report
    assert report["loaded"] > len(names) * 0.9, (report["loaded"], len(names))
    child = report["child"]
    assert child["app"] and child["neonize"], child  # the worker loads what was left to it, and serves the app
    assert child["fresh"] < report["loaded"], child  # most of what it needs was already there

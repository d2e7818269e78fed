"""clarin.progress on a real terminal (a pty) and on a pipe, in a separate process each time."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

from tests import support

# 200 steps, 1 ms apart: well under the 5 s timer, so the plain-line output is paced by percent alone.
SCRIPT = """
import time
from clarin.progress import Progress
with Progress("seeding", 200, unit="rows", every_percent=25) as p:
    for i in range(200):
        p.advance(1, "contacts" if i < 100 else "leads")
        time.sleep(0.001)
"""


def stderr_on_pty(argv: list[str], env: dict[str, str] | None = None, timeout: float = 30) -> bytes:
    """What ``argv`` writes to its stderr when that is a terminal (stdout goes to /dev/null)."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(argv, cwd=support.ROOT, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=slave)
        os.close(slave)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the child closed its end
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        assert proc.wait(10) == 0
        return out
    finally:
        os.close(master)


def test_terminal_gets_one_line_redrawn_in_place() -> None:
    out = stderr_on_pty([sys.executable, "-c", SCRIPT]).decode()
    assert "\r" in out
    # One line: every redraw starts with \r and only the final close() ends it.
    assert out.replace("\r\n", "\n").count("\n") == 1 and out.endswith("\n")
    frames = [f for f in out.rstrip("\r\n").split("\r") if f]
    assert len(frames) >= 2, frames  # it was drawn more than once: it moved
    assert frames[-1].startswith("seeding [########################] 100% 200/200 rows ")
    assert frames[-1].rstrip().endswith("leads")
    assert all(f.startswith("seeding [") for f in frames)
    assert any(" 100% " not in f for f in frames), frames  # drawn part-way, not only at the end


def test_pipe_gets_plain_lines_every_few_percent() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=support.ROOT, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr
    lines = done.stderr.splitlines()
    assert [line.split()[1] for line in lines] == ["25%", "50%", "75%", "100%"], lines
    assert lines[0].startswith("seeding:  25% 50/200 rows ") and lines[0].endswith("contacts")
    assert lines[-1].startswith("seeding: 100% 200/200 rows ") and lines[-1].endswith("leads")
    assert done.stdout == ""


def test_pipe_gets_a_line_every_few_seconds_when_percent_moves_slowly() -> None:
    script = """
import time
from clarin.progress import Progress
p = Progress("migrate", 1000, every_percent=50, every_seconds=0.2)
for i in range(5):
    p.advance(1)
    time.sleep(0.25)
p.close("done")
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=support.ROOT, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    # Nowhere near 50 %, yet the time-based lines show it is alive, then the closing line.
    assert len(lines) >= 4, lines
    assert lines[-1].startswith("migrate:   0% 5/1,000 ") and lines[-1].endswith("done")

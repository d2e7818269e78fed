"""docker-compose.yml and the Dockerfile, checked without a Docker engine (none on the CI machine).

What `docker compose up` needs from a clean checkout: three services with health checks and a restart
policy, the app waiting for healthy dependencies, a build context that holds every file the image build
reads (.dockerignore semantics as Docker applies them), and only environment variables the app reads.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import yaml

from clarin.config import Settings
from tests.support import ROOT

DASHBOARD_KNOBS = {"DASHBOARD_SRC", "DASHBOARD_PUBLIC_URL", "PROXY_PORT"}


def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    steps = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, args = line.partition(" ")
            steps.append((instruction.upper(), args.strip()))
    return steps


def _ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """.dockerignore as Docker reads it: patterns anchored at the context root, `*` within one path
    segment, `**` across segments, `!` re-includes, the last matching rule wins."""
    rules = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:].strip() if negate else line
        pattern = pattern.strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        # A matched directory excludes everything below it.
        rules.append((negate, re.compile(f"^{regex}(?:/.*)?$")))
    return rules


def _excluded(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    excluded = False
    for negate, pattern in rules:
        if pattern.match(path):
            excluded = not negate
    return excluded


def _context_files() -> list[str]:
    """The files of a clean checkout (what git tracks, plus new files not ignored) sent as build context."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.splitlines()
    rules = _ignore_rules()
    return [f for f in listed if (ROOT / f).is_file() and not _excluded(f, rules)]


def test_dockerignore_matching_follows_docker_rules() -> None:
    rules = _ignore_rules()
    assert _excluded(".venv/bin/python", rules)
    assert _excluded("clarin/_speedups/phone.cpython-311-x86_64-linux-gnu.so", rules)  # host build output
    assert _excluded("clarin/_speedups/phone.c", rules)
    assert _excluded("clarin/http/__pycache__/server.cpython-311.pyc", rules)
    assert not _excluded("clarin/_speedups/phone.pyx", rules)
    assert not _excluded("sql/migrations/0001_schema.sql", rules)


def test_services_have_health_checks_restart_policies_and_ordering() -> None:
    services = _compose()["services"]
    assert set(services) >= {"postgres", "redis", "app"}
    for name in ("postgres", "redis", "app"):
        service = services[name]
        assert service.get("restart") == "unless-stopped", name
        check = service.get("healthcheck")
        assert check and check.get("test"), f"{name} has no health check"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
    app = services["app"]
    assert app["build"] == "."
    assert app["depends_on"] == {"postgres": {"condition": "service_healthy"},
                                 "redis": {"condition": "service_healthy"}}
    assert app["healthcheck"]["test"][:2] == ["CMD", "curl"]
    assert app["healthcheck"]["test"][-1] == "http://localhost:8080/ready"
    assert "8080:8080" in app["ports"]
    # The app's DSN points at the postgres service with the credentials that service is created with.
    pg_env = services["postgres"]["environment"]
    assert app["environment"]["DATABASE_URL"] == (
        f"postgres://{pg_env['POSTGRES_USER']}:{pg_env['POSTGRES_PASSWORD']}@postgres:5432/{pg_env['POSTGRES_DB']}")
    assert app["environment"]["REDIS_URL"].startswith("redis://redis:6379")
    # Data (dev JWT secret, media) survives a container re-creation.
    assert app["environment"]["CLARIN_DATA_DIR"] == "/data"
    assert any(str(v).endswith(":/data") for v in app["volumes"])


def test_every_app_variable_is_a_setting_clarin_reads() -> None:
    config = (ROOT / "clarin" / "config.py").read_text()
    read = set(re.findall(r'\(env, "([A-Z0-9_]+)"', config))
    assert {"DATABASE_URL", "JWT_SECRET", "CLARIN_KEEP_DB"} <= read  # the pattern finds the settings
    app = _compose()["services"]["app"]
    unknown = set(app["environment"]) - read
    assert not unknown, f"docker-compose.yml sets variables clarin never reads: {sorted(unknown)}"
    # ${VAR:-default} substitutions come from the operator's shell: the app's are settings, not typos; the
    # dashboard profile's few are compose-level knobs, each documented in docs/DASHBOARD.md.
    substituted = set(re.findall(r"\$\{([A-Z0-9_]+)", yaml.safe_dump(app)))
    assert substituted <= read, sorted(substituted - read)
    everywhere = set(re.findall(r"\$\{([A-Z0-9_]+)", (ROOT / "docker-compose.yml").read_text()))
    dashboard_knobs = everywhere - read
    assert dashboard_knobs == DASHBOARD_KNOBS, sorted(dashboard_knobs ^ DASHBOARD_KNOBS)
    guide = (ROOT / "docs" / "DASHBOARD.md").read_text()
    assert all(f"`{knob}`" in guide for knob in dashboard_knobs), "a compose knob docs/DASHBOARD.md does not explain"


def test_dockerfile_installs_what_clarin_serve_needs_and_listens_on_all_interfaces() -> None:
    steps = _dockerfile()
    runs = [args for instruction, args in steps if instruction == "RUN"]
    env = " ".join(args for instruction, args in steps if instruction == "ENV")
    assert "HOST=0.0.0.0" in env and "PORT=8080" in env
    assert ("EXPOSE", "8080") in steps
    assert steps[-1] == ("CMD", '["clarin", "serve"]')
    assert any("curl" in shlex.split(r) for r in runs if "apt-get install" in r), "the health check runs curl"
    # setup.py imports Cython to compile the speed-ups: it must be in the image before build_ext runs.
    cython_at = next(i for i, r in enumerate(runs) if "Cython" in r)
    build_at = next(i for i, r in enumerate(runs) if "build_ext" in r)
    assert cython_at < build_at
    # The image runs from the source tree (clarin reads sql/ next to the package): editable install.
    assert any("-e ." in r for r in runs)


def test_build_context_holds_every_file_the_image_build_reads(tmp_path: Path) -> None:
    files = _context_files()
    present = set(files)
    for instruction, args in _dockerfile():
        if instruction != "COPY":
            continue
        *sources, _dest = shlex.split(args)
        for source in sources:
            source = source.rstrip("/")
            if source == ".":
                continue
            assert source in present or any(f.startswith(source + "/") for f in present), (
                f"COPY {source}: missing from the build context (excluded by .dockerignore?)")
    for needed in ("pyproject.toml", "setup.py", "README.md", "clarin/cli.py", "clarin/_speedups/phone.pyx",
                   "sql/migrations/0001_schema.sql"):
        assert needed in present, needed
    assert not [f for f in files if f.endswith((".so", ".c"))], "host build outputs would enter the image"

    # The context really builds: setuptools reads the project metadata (pyproject.toml + README.md) from a
    # copy of exactly what the Dockerfile copies, as `pip install -e .` does first in the image.
    for name in files:
        if name.split("/")[0] in ("pyproject.toml", "setup.py", "README.md", "clarin", "sql"):
            target = tmp_path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes((ROOT / name).read_bytes())
    (tmp_path / "meta").mkdir()
    probe = ("import setuptools.build_meta as b, sys; "
             "print(b.prepare_metadata_for_build_editable(sys.argv[1]))")
    built = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "meta")], cwd=tmp_path,
                           env={"PATH": "/usr/bin:/bin", "CLARIN_NO_CYTHON": "1"},
                           capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr[-3000:]
    assert built.stdout.strip().splitlines()[-1].startswith("clarin-")


def _nginx_directives(block: str) -> dict[str, str]:
    """`name value;` lines of one nginx block body (nested blocks not descended into)."""
    return {m[0]: m[1] for m in re.findall(r"^\s*([a-z_]+)\s+([^;{]*);", block, re.M)}


def test_dashboard_profile_and_proxy_fit_together() -> None:
    services = _compose()["services"]
    dashboard, proxy = services["dashboard"], services["proxy"]
    # Opt-in: a plain `docker compose up` still starts only what needs no other repository.
    for service in (dashboard, proxy):
        assert service["profiles"] == ["dashboard"]
        assert service.get("restart") == "unless-stopped"
        assert service["healthcheck"]["test"][0] == "CMD"
    for name in ("postgres", "redis", "app"):
        assert "profiles" not in services[name], name
    # Built with the dashboard repository's own Dockerfile, which sits next to its frontend/ folder.
    assert dashboard["build"]["context"].endswith("/frontend")
    assert dashboard["build"]["dockerfile"] == "../deploy/Dockerfile.frontend"
    assert "NEXT_PUBLIC_API_URL" in dashboard["build"]["args"]
    assert proxy["depends_on"] == {"app": {"condition": "service_healthy"},
                                   "dashboard": {"condition": "service_healthy"}}
    assert "./deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro" in proxy["volumes"]
    assert proxy["healthcheck"]["test"][-1] == "http://127.0.0.1/health"

    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    # The upstreams are the compose services on the ports they listen on; the proxy publishes what it listens on.
    assert re.search(r"upstream clarin_api \{\s*server app:8080;", conf)
    assert re.search(r"upstream clarin_dashboard \{\s*server dashboard:3000;", conf)
    assert "8080:8080" in services["app"]["ports"]
    assert any(str(p).endswith(":80") for p in proxy["ports"])
    server = conf[conf.index("server {"):]
    top = _nginx_directives(server.split("location", 1)[0])
    assert top["listen"] == "80"
    # The proxy refuses exactly what Clarin would: client_max_body_size is Clarin's default BODY_LIMIT.
    body_limit = next(f.default for f in msgspec.structs.fields(Settings) if f.name == "body_limit")
    assert top["client_max_body_size"] == f"{body_limit // (1024 * 1024)}m"
    assert top["proxy_http_version"] == "1.1"
    assert top["proxy_set_header"]  # Host, X-Forwarded-For ($remote_addr: overwritten), Upgrade, Connection
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in conf
    assert "proxy_set_header Upgrade $http_upgrade;" in conf
    assert "proxy_set_header Connection $connection_upgrade;" in conf
    ws = _nginx_directives(re.search(r"location ~ \^/ws/\?\$ \{([^}]*)\}", conf)[1])
    assert ws["proxy_pass"] == "http://clarin_api"
    assert ws["proxy_read_timeout"] == "1h" and ws["access_log"] == "off"

"""Run the fake Kommo server for a demo: ``python -m tests.fake_kommo [--leads 10000] [--token t] [--port 0]``.

Then start Clarin with ``KOMMO_SUBDOMAIN=demo KOMMO_ACCESS_TOKEN=<token> KOMMO_BASE_URL=<printed url>``.
"""

from __future__ import annotations

import argparse
import time

from tests.fake_kommo.data import generate
from tests.fake_kommo.server import FakeKommo


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fake_kommo")
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--token", default="t")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    fake = FakeKommo(generate(args.leads, args.seed), token=args.token, port=args.port).start()
    print(f"fake Kommo at {fake.url} (token {args.token!r}, {args.leads} leads); Ctrl-C stops it", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()

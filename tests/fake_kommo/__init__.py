"""A fake Kommo API v4 server for tests and demos (real HTTP on 127.0.0.1, deterministic data)."""

from tests.fake_kommo.data import MAIN_PIPELINE, SECOND_PIPELINE, Dataset, generate
from tests.fake_kommo.server import FakeKommo, Hit

__all__ = ["MAIN_PIPELINE", "SECOND_PIPELINE", "Dataset", "FakeKommo", "Hit", "generate"]

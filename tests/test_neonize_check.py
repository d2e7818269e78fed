"""The start-up check of the installed neonize (clarin/neonize_check.py): the real neonize passes; an old,
too new or pre-release version, one that does not load, or one missing what the driver uses is refused with
a message naming the version found and the range expected — and ``clarin serve`` refuses to start."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from clarin.neonize_check import (
    REQUIRED,
    SUPPORTED,
    NeonizeUnsupported,
    check_neonize,
    missing_features,
    version_supported,
)
from tests import support

ROOT = Path(__file__).resolve().parent.parent


def real_modules() -> dict[str, Any]:
    return {name: importlib.import_module(name) for name in REQUIRED}


def module_copy(name: str, **changes: Any) -> types.ModuleType:
    """A broken neonize stand-in: the real module's namespace with some names replaced (None = removed)."""
    copy = types.ModuleType(name)
    copy.__dict__.update(vars(importlib.import_module(name)))
    for attr, value in changes.items():
        if value is None:
            delattr(copy, attr)
        else:
            setattr(copy, attr, value)
    return copy


@pytest.mark.parametrize(("version", "ok"), [
    ("0.5.2", True), ("0.5.3", True), ("0.5.10", True), ("0.5.2.post1", True),
    ("0.5.1", False), ("0.4.9", False), ("0.3.10", False),  # 0.3.10 was the old lower bound: no new_device
    ("0.6.0", False), ("0.6", False), ("1.0.0", False),
    ("0.5.3rc1", False), ("0.5.3.dev0", False), ("", False), ("unknown", False),
])
def test_version_range(version: str, ok: bool) -> None:
    assert version_supported(version) is ok


def test_the_installed_neonize_passes() -> None:
    import neonize

    assert check_neonize() == importlib.metadata.version("neonize") == neonize.__version__
    assert missing_features(real_modules()) == []


def test_a_version_outside_the_range_is_refused_with_both_versions_named() -> None:
    with pytest.raises(NeonizeUnsupported) as refused:
        check_neonize(installed_version=lambda _name: "0.4.0")
    message = str(refused.value)
    assert message.startswith("neonize 0.4.0 is installed; ") and SUPPORTED in message
    assert "WHATSAPP_DRIVER=simulated" in message


def test_neonize_missing_or_not_loading_is_refused() -> None:
    def absent(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    with pytest.raises(NeonizeUnsupported, match=r"^neonize is not installed; .*neonize>=0\.5\.2,<0\.6"):
        check_neonize(installed_version=absent)

    def no_library(name: str) -> types.ModuleType:
        if name == "neonize._binder":
            raise OSError("libgoneonize.so: cannot open shared object file")
        return importlib.import_module(name)

    with pytest.raises(NeonizeUnsupported) as refused:
        check_neonize(import_module=no_library)
    assert str(refused.value).startswith(
        "neonize 0.5.2 does not load (OSError: libgoneonize.so: cannot open shared object file); ")


def test_missing_attributes_are_named() -> None:
    from neonize.aioze.client import NewAClient

    class OldClient(NewAClient):  # neonize < 0.5: no new_device
        def __init__(self, name: str, jid: Any = None, props: Any = None, uuid: str | None = None) -> None:
            super().__init__(name, jid, props, uuid)

    class NoFinalizer(NewAClient):  # the Go session no longer released through _stop_finalizer
        def __init__(self, name: str, jid: Any = None, props: Any = None, uuid: str | None = None,
                     new_device: bool = False) -> None:
            super().__init__(name, jid, props, uuid, new_device)
            self._stop_finalizer.detach()
            del self._stop_finalizer

    modules = real_modules()
    assert missing_features({**modules, "neonize._binder": module_copy("neonize._binder", consume_bytes_struct=None)}) == [
        "neonize._binder:consume_bytes_struct"]
    assert missing_features({**modules, "neonize.aioze.client": module_copy("neonize.aioze.client", NewAClient=OldClient)}) == [
        "NewAClient(new_device=...)"]
    assert missing_features({**modules, "neonize.aioze.client": module_copy("neonize.aioze.client", NewAClient=NoFinalizer)}) == [
        "NewAClient()._stop_finalizer"]
    broken_events = module_copy("neonize.events", ReceiptEv=None)
    assert missing_features({**modules, "neonize.events": broken_events}) == ["neonize.events:ReceiptEv"]

    def import_broken(name: str) -> types.ModuleType:
        return broken_events if name == "neonize.events" else importlib.import_module(name)

    with pytest.raises(NeonizeUnsupported) as refused:
        check_neonize(import_module=import_broken)
    assert str(refused.value).startswith("neonize 0.5.2 lacks what the driver uses (neonize.events:ReceiptEv); ")


def test_clarin_serve_refuses_to_start_with_an_unsupported_neonize(tmp_path: Path) -> None:
    """An installed neonize 0.4.0 (its distribution metadata first on the path): ``clarin serve`` ends with exit
    code 2 and one error line, before touching the database (the URL points nowhere) or starting workers."""
    dist = tmp_path / "neonize-0.4.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: neonize\nVersion: 0.4.0\n")
    env = support.base_env("postgresql://nobody@127.0.0.1:9/nowhere", WHATSAPP_DRIVER="neonize",
                           PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]), PORT="9")
    result = subprocess.run([sys.executable, "-m", "clarin", "serve"], env=env, cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2, (result.stdout, result.stderr)
    errors = [line for line in result.stderr.splitlines() if "neonize" in line]
    assert len(errors) == 1, result.stderr
    assert "neonize 0.4.0 is installed; Clarin's WhatsApp driver needs neonize>=0.5.2,<0.6" in errors[0]
    assert "migrations" not in result.stderr and "serving on" not in result.stderr

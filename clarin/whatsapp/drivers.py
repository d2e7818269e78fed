"""Which WhatsApp driver a process runs (``WHATSAPP_DRIVER``): the choice, apart from the pool that uses it.

The implementations are imported on demand: the neonize driver loads a Go runtime, which a process running the
simulated driver (tests, demos) never needs.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clarin.config import Settings
    from clarin.whatsapp.driver import WhatsAppDriver


def make_driver(settings: Settings, dsn: str) -> WhatsAppDriver:
    """``neonize`` (default, production) or ``simulated`` (tests, demos)."""
    if settings.whatsapp_driver == "simulated":
        from clarin.whatsapp.simulated_driver import SimulatedDriver

        # Test knob: seconds each simulated send takes (fault tests need sends in flight when a fault hits).
        return SimulatedDriver(send_delay=float(os.environ.get("WHATSAPP_SIMULATED_SEND_DELAY") or 0))
    from clarin.whatsapp.neonize_driver import NeonizeDriver

    return NeonizeDriver(dsn)

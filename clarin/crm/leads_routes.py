"""Routes for leads (being built; see docs/CONTRIBUTING-FEATURES.md)."""

from __future__ import annotations

from clarin.http.routes import RouteGroup

routes = RouteGroup(tags=("leads",))

"""Security headers (as the original's helmet setup) and CORS."""

from __future__ import annotations

SECURITY_HEADERS: list[tuple[str, str]] = [
    ("x-xss-protection", "1; mode=block"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
    ("cross-origin-embedder-policy", "require-corp"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("permissions-policy", "geolocation=(), microphone=(), camera=()"),
    ("origin-agent-cluster", "?1"),
    ("x-dns-prefetch-control", "off"),
    ("x-download-options", "noopen"),
    ("x-permitted-cross-domain-policies", "none"),
]
HSTS = ("strict-transport-security", "max-age=31536000; includeSubDomains")

CORS_METHODS = "GET,POST,PUT,DELETE,OPTIONS,PATCH"
CORS_HEADERS = "Origin,Content-Type,Accept,Authorization,Upgrade,Connection,X-Request-ID"


class Cors:
    def __init__(self, origins: tuple[str, ...]) -> None:
        self._origins = frozenset(origins)
        self._any = "*" in self._origins

    def allowed(self, origin: str) -> bool:
        return bool(origin) and (self._any or origin in self._origins)

    def response_headers(self, origin: str) -> list[tuple[str, str]]:
        if not self.allowed(origin):
            return []
        return [
            ("access-control-allow-origin", origin),
            ("access-control-allow-credentials", "true"),
            ("access-control-expose-headers", "X-Request-ID,X-RateLimit-Limit,X-RateLimit-Remaining,X-RateLimit-Reset"),
            ("vary", "Origin"),
        ]

    def preflight_headers(self, origin: str) -> list[tuple[str, str]]:
        if not self.allowed(origin):
            return []
        return [
            *self.response_headers(origin),
            ("access-control-allow-methods", CORS_METHODS),
            ("access-control-allow-headers", CORS_HEADERS),
            ("access-control-max-age", "600"),
        ]

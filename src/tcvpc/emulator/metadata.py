"""A CVM instance metadata endpoint (``tcvpc emulator --metadata``), for role-based jobs.

``GET /latest/meta-data/cam/security-credentials/`` answers the role name (text);
``GET /latest/meta-data/cam/security-credentials/<role>`` answers a new temporary key of the
emulator's :class:`~tcvpc.emulator.sts.TokenAuthority` (``TmpSecretId``, ``TmpSecretKey``,
``Token``, ``ExpiredTime``, ``Expiration``, ``Code``), as the real service does on a CVM instance.
Each credential request issues a fresh key and is counted, so a test can check that a client
fetches once per refresh. Anything else under the prefix is a 404, like the real service.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from aiohttp import web

from tcvpc.emulator.sts import TokenAuthority

__all__ = ["METADATA_PREFIX", "MetadataService"]

METADATA_PREFIX = "/latest/meta-data/"
_ROLES = "cam/security-credentials/"


class MetadataService:
    """Serves the role name and its keys; counts what it was asked."""

    def __init__(
        self, authority: TokenAuthority, *, role: str, clock: Callable[[], float] = time.time
    ) -> None:
        self._authority = authority
        self.role = role
        self._clock = clock  # the server's clock (skew included), as for API requests
        self.role_fetches = 0
        self.credential_fetches = 0

    async def handle(self, request: web.Request) -> web.Response:
        path = request.path.removeprefix(METADATA_PREFIX)
        if request.method != "GET":
            return web.Response(status=405, text="method not allowed\n")
        if path == _ROLES:
            self.role_fetches += 1
            return web.Response(text=self.role, content_type="text/plain")
        if path == _ROLES + self.role:
            self.credential_fetches += 1
            key = self._authority.issue(self._clock(), via="metadata")
            document = {**key.document(), "Code": "Success"}
            return web.Response(text=json.dumps(document), content_type="text/plain")
        return web.Response(status=404, text="404 - Not Found\n", content_type="text/plain")

    def snapshot(self) -> dict[str, int]:
        return {"role_fetches": self.role_fetches, "credential_fetches": self.credential_fetches}

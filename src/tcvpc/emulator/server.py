"""The emulator as an async context manager: ``async with Emulator(config) as emu: emu.url``.

It serves in the *current* event loop, so a test can start it next to the code under test; the
CLI runs the same object in its own process. With ``tls`` it makes a throwaway CA for the run
(``trustme``), writes the CA certificate where only this user can read it and removes it on
close. Shutdown waits at most ``shutdown_timeout`` seconds for answers in flight.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import ssl
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from tcvpc.emulator.app import EmulatorApp
from tcvpc.emulator.config import EmulatorConfig, FaultConfig
from tcvpc.emulator.metadata import METADATA_PREFIX
from tcvpc.emulator.seed import generate, load_file, populate
from tcvpc.emulator.state import EmuTunnelState, Tunnel, VpcState

__all__ = ["TLS_MISSING", "Emulator", "is_loopback"]

#: What to tell a user who asked for TLS without ``trustme`` installed.
TLS_MISSING = (
    "the emulator's TLS mode needs the trustme package: pip install 'tcvpc[emulator]' "
    "(or pip install trustme)"
)


class Emulator:
    """A running local VPC API endpoint.

    State is seeded in the constructor, so :meth:`tunnels` works before the server starts.
    """

    def __init__(self, config: EmulatorConfig | None = None, *, shutdown_timeout: float = 1.0):
        self.config = config if config is not None else EmulatorConfig()
        self.state = VpcState(
            delete_seconds=self.config.delete_seconds,
            mutex_seconds=self.config.effective_mutex_seconds,
        )
        if self.config.seed_file is not None:
            populate(self.state, load_file(self.config.seed_file))
        else:
            populate(
                self.state,
                generate(self.config.gateways, self.config.tunnels_per_gateway, self.config.seed),
            )
        self.app = EmulatorApp(self.config, self.state)
        self._shutdown_timeout = shutdown_timeout
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self._port: int | None = None
        self._tls_dir: Path | None = None
        self._ca_path: Path | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("the emulator is already running")
        runner = web.AppRunner(
            self.app.make_app(),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=self._shutdown_timeout,
        )
        ssl_context = self._make_tls() if self.config.tls else None
        try:
            await runner.setup()
            site = web.TCPSite(
                runner,
                self.config.host,
                self.config.port,
                reuse_address=True,
                ssl_context=ssl_context,
            )
            await site.start()
        except BaseException:
            await runner.cleanup()
            self._remove_tls()
            raise
        self._runner = runner
        address = runner.addresses[0]
        host, port = address[0], int(address[1])
        self._port = port
        if isinstance(host, str) and ":" in host:  # IPv6 literal
            host = f"[{host}]"
        self._url = f"{'https' if ssl_context else 'http'}://{host}:{port}"

    def _make_tls(self) -> ssl.SSLContext:
        """A server context with a certificate from a CA made for this run; write the CA file."""
        try:
            import trustme
        except ImportError:
            raise RuntimeError(TLS_MISSING) from None
        ca = trustme.CA(organization_name="tcvpc emulator (throwaway)")
        names = {"127.0.0.1", "::1", "localhost", self.config.host}
        cert = ca.issue_cert(*sorted(names))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        self._tls_dir = Path(tempfile.mkdtemp(prefix="tcvpc-emulator-ca-"))  # mode 0700
        ca_path = self._tls_dir / "ca.pem"
        # O_EXCL in a fresh private directory: nobody else can have planted or read the file.
        fd = os.open(ca_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(ca.cert_pem.bytes())
        self._ca_path = ca_path
        return context

    def _remove_tls(self) -> None:
        tls_dir, self._tls_dir, self._ca_path = self._tls_dir, None, None
        if tls_dir is not None:
            shutil.rmtree(tls_dir, ignore_errors=True)

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        try:
            if runner is not None:
                await runner.cleanup()
        finally:
            self._remove_tls()

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- what tests use ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (``https://`` with ``tls``; only while running)."""
        if self._url is None:
            raise RuntimeError("the emulator is not running: use `async with Emulator(...)`")
        return self._url

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the emulator is not running")
        return self._port

    @property
    def endpoint(self) -> str:
        """``HOST:PORT``, what the official SDK's ``HttpProfile(endpoint=...)`` wants."""
        return self.url.split("://", 1)[1]

    @property
    def ca_path(self) -> Path:
        """The PEM file of the run's throwaway CA (``tls`` only; removed on close)."""
        if self._ca_path is None:
            raise RuntimeError("the emulator is not running with tls=True")
        return self._ca_path

    @property
    def metadata_url(self) -> str:
        """The CVM metadata base URL (``TCVPC_METADATA_URL``), when ``metadata`` is configured."""
        if not self.config.metadata:
            raise RuntimeError("the metadata endpoint is off: EmulatorConfig(metadata=True)")
        return self.url + METADATA_PREFIX

    def revoke_token(self, secret_id_or_token: str) -> bool:
        """Revoke one temporary key (by secret id or token): its next use gets TokenFailure."""
        return self.app.tokens.revoke(secret_id_or_token)

    def revoke_all_tokens(self) -> int:
        """Revoke every temporary key issued so far; returns how many were live."""
        return self.app.tokens.revoke_all()

    def tunnels(self) -> list[dict[str, Any]]:
        """A snapshot of every listed tunnel (dicts: id, gateway, vpc, name, state, ...)."""
        return [t.as_dict() for t in self.state.tunnels()]

    def tunnel(self, tunnel_id: str) -> dict[str, Any] | None:
        t = self.state.get(tunnel_id)
        return None if t is None else t.as_dict()

    def add_tunnel(
        self,
        tunnel_id: str,
        gateway_id: str,
        *,
        vpc_id: str | None = None,
        name: str | None = None,
        state: EmuTunnelState | str = EmuTunnelState.AVAILABLE,
        tags: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    ) -> Tunnel:
        """Add one tunnel (IDs must look real: ``vpnx-``/``vpngw-`` + 8 ``[a-z0-9]``)."""
        suffix = gateway_id.removeprefix("vpngw-")
        return self.state.add_tunnel(
            tunnel_id,
            gateway_id,
            vpc_id=vpc_id if vpc_id is not None else f"vpc-{suffix}",
            name=name,
            customer_gateway_id=f"cgw-{suffix}",
            state=state,
            tags=tags,
        )

    def stats(self) -> dict[str, object]:
        """The same dict as ``GET /_emulator/stats``."""
        return self.app.stats_snapshot()

    def set_faults(self, faults: FaultConfig) -> None:
        """Change fault probabilities at run time (the seeded RNG carries on)."""
        self.app.set_faults(faults)

    def set_clock_skew(self, seconds: float) -> None:
        """Move the server's clock (affects ``SignatureExpire`` and the ``Date`` header)."""
        self.app.clock_skew_seconds = float(seconds)


def is_loopback(host: str) -> bool:
    """True when ``host`` names only this machine (so binding it exposes nothing)."""
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)

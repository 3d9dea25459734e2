"""A real ``redis-server`` on a free loopback port, for the shared-limiter tests.

``redis_server`` (session-scoped) is one server for the whole run; ``redis_factory`` starts
private ones a test may kill and restart (on the same port). Servers keep nothing on disk
(``--save '' --appendonly no``, a temporary directory) and are killed at the end.

Without the binary the tests skip with the reason, except where ``TCVPC_REQUIRE_REDIS=1`` or
``CI=true`` is set (``.ci/run`` sets the first): there a missing redis-server is a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REDIS_SERVER = os.environ.get("TCVPC_REDIS_SERVER", "redis-server")


def _required() -> bool:
    return os.environ.get("TCVPC_REQUIRE_REDIS") == "1" or os.environ.get("CI") == "true"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One redis-server process; ``stop()`` kills it, ``start()`` brings it back on its port."""

    def __init__(self, binary: str, directory: Path, *, password: str | None = None) -> None:
        self.binary = binary
        self.directory = directory
        self.password = password
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        log = (self.directory / f"redis-{self.port}.log").open("ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.log_tail()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not listen on {self.port}: {self.log_tail()}")

    def stop(self) -> None:
        """Kill it (SIGKILL: as abrupt as a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.directory / f"redis-{self.port}.log").read_text()[-2000:]
        return ""


class RedisFactory:
    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.servers: list[RedisServer] = []

    def __call__(self, *, password: str | None = None) -> RedisServer:
        server = RedisServer(self.binary, self.directory, password=password)
        self.servers.append(server)
        server.start()
        return server


@pytest.fixture(scope="session")
def redis_factory() -> Iterator[RedisFactory]:
    binary = shutil.which(REDIS_SERVER)
    if binary is None:
        reason = f"{REDIS_SERVER} not found (apt-get install redis-server)"
        if _required():
            pytest.fail(f"{reason}; TCVPC_REQUIRE_REDIS=1/CI=true make it required")
        pytest.skip(reason)
    with tempfile.TemporaryDirectory(prefix="tcvpc-redis-") as tmp:
        factory = RedisFactory(binary, Path(tmp))
        try:
            yield factory
        finally:
            for server in factory.servers:
                server.stop()


@pytest.fixture(scope="session")
def redis_server(redis_factory: RedisFactory) -> RedisServer:
    """One server for the session; tests keep apart by key prefix."""
    return redis_factory()

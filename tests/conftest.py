"""Every test: the default credential chain's CVM probe goes to a closed loopback port.

Without this, a test that builds a client without credentials would ask the real metadata host
(``metadata.tencentyun.com``), which the test suite must never contact.

Also shared by every test directory: a real redis-server (``redis_server``, ``redis_factory``;
see redis_fixture.py).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from redis_fixture import redis_factory, redis_server
from tcvpc.chain import forget_probes

__all__ = ["redis_factory", "redis_server"]

# ``HYPOTHESIS_PROFILE=fuzz``: the benchmark-side run of the fuzzers (``python -m benchmarks soak``:
# the response decoder and the input readers, 10,000 cases each).
settings.register_profile("fuzz", max_examples=10_000, deadline=None)
if os.environ.get("HYPOTHESIS_PROFILE"):
    settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])

CLOSED_METADATA_URL = "http://127.0.0.1:9/latest/meta-data/"
"""Port 9 (discard): nothing listens on loopback, so the probe is refused at once."""


@pytest.fixture(autouse=True)
def _no_real_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TCVPC_METADATA_URL", CLOSED_METADATA_URL)
    for name in ("TKE_REGION", "TKE_PROVIDER_ID", "TKE_WEB_IDENTITY_TOKEN_FILE", "TKE_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    forget_probes()

"""The default credential chain: environment, profile file, CVM instance role, TKE OIDC.

The official SDKs' order. The first two are local and are read when the client is made (a typo
there should fail at once); the last two need the network, so they are looked up at the first
call, by :class:`DefaultChainProvider`.

The CVM probe asks the metadata service for the role name with a short timeout (1 s) and the
answer is remembered for the process, per metadata URL: a laptop without a metadata service pays
that second once, not per client or per call.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from typing import Any

from tcvpc.credentials import (
    ENV_CREDENTIALS_FILE,
    ENV_SECRET_ID,
    ENV_SECRET_KEY,
    Credential,
    CredentialProvider,
    StaticProvider,
    from_environment,
    from_profile,
    profile_path,
)
from tcvpc.endpoint import Endpoint
from tcvpc.errors import CredentialsNotFoundError, TcvpcError
from tcvpc.metadata import CvmRoleProvider, resolve_metadata_url
from tcvpc.refreshing import RefreshableProvider
from tcvpc.sts import ENV_TKE, TkeOidcProvider

__all__ = ["DEFAULT_PROBE_TIMEOUT", "DefaultChainProvider", "default_provider", "forget_probes"]

logger = logging.getLogger("tcvpc.credentials")

DEFAULT_PROBE_TIMEOUT = 1.0

_probes: dict[str, tuple[str | None, str]] = {}
"""Metadata URL -> (role name, or None and why not). Process-wide."""


def forget_probes() -> None:
    """Forget every remembered CVM probe (tests; a process that gained a role)."""
    _probes.clear()


def default_provider(
    environ: Mapping[str, str] | None = None,
    *,
    endpoint: Endpoint | None = None,
    metadata_url: str | None = None,
) -> CredentialProvider:
    """The chain's provider: a static one for environment/profile keys, else a lazy chain.

    ``endpoint`` is the client's (STS calls follow it). Raises ``CredentialsNotFoundError`` only
    for a broken profile file here; "nothing anywhere" is raised at the first call.
    """
    env = os.environ if environ is None else environ
    found = from_environment(dict(env))
    if found is None:
        found = from_profile(profile_path(dict(env)))
    if found is not None:
        return StaticProvider(found)
    return DefaultChainProvider(env, endpoint=endpoint, metadata_url=metadata_url)


class DefaultChainProvider:
    """Finds a provider at the first ``get()``: environment, profile, CVM role, TKE OIDC.

    It owns the provider it finds (``aclose()`` closes it) and passes ``force_refresh`` on.
    """

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        endpoint: Endpoint | None = None,
        metadata_url: str | None = None,
        probe_timeout: float = DEFAULT_PROBE_TIMEOUT,
        provider_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._env = dict(os.environ if environ is None else environ)
        self._endpoint = endpoint
        self._metadata_url = resolve_metadata_url(metadata_url, self._env)
        self._probe_timeout = probe_timeout
        self._options = dict(provider_options or {})
        self._found: CredentialProvider | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"DefaultChainProvider(found={type(self._found).__name__ if self._found else None})"

    @property
    def provider(self) -> CredentialProvider | None:
        """The provider the chain settled on (``None`` before the first successful ``get()``)."""
        return self._found

    async def get(self) -> Credential:
        found = self._found or await self._resolve()
        return await found.get()

    async def force_refresh(self, rejected: Credential) -> Credential:
        found = self._found or await self._resolve()
        if isinstance(found, RefreshableProvider):
            return await found.force_refresh(rejected)
        return await found.get()

    async def aclose(self) -> None:
        found, self._found = self._found, None
        closer = getattr(found, "aclose", None)
        if closer is not None:
            await closer()

    async def _resolve(self) -> CredentialProvider:
        async with self._lock:  # one lookup, however many calls start at once
            if self._found is None:
                self._found = await self._look()
            return self._found

    async def _look(self) -> CredentialProvider:
        found = from_environment(self._env)
        if found is None:
            found = from_profile(profile_path(self._env))
        if found is not None:
            return StaticProvider(found)
        role, cvm_reason = await self._probe_cvm()
        if role is not None:
            return CvmRoleProvider(metadata_url=self._metadata_url, role=role, **self._options)
        tke = TkeOidcProvider.from_environment(self._env, endpoint=self._endpoint, **self._options)
        if tke is not None:
            return tke
        raise CredentialsNotFoundError(
            "no Tencent Cloud credentials found; looked in: "
            f"environment variables {ENV_SECRET_ID} and {ENV_SECRET_KEY}; "
            f"profile file {profile_path(self._env)} (section [default], keys secret_id and "
            f"secret_key; {ENV_CREDENTIALS_FILE} names another file); "
            f"CVM instance role at {self._metadata_url} ({cvm_reason}; TCVPC_METADATA_URL "
            f"names another); TKE OIDC variables {', '.join(ENV_TKE)} (not set)"
        )

    async def _probe_cvm(self) -> tuple[str | None, str]:
        """The role the metadata service names, or ``None`` and why not (remembered)."""
        url = self._metadata_url
        if url not in _probes:
            probe = CvmRoleProvider(metadata_url=url)
            try:
                _probes[url] = (await probe.role_name(probe_seconds=self._probe_timeout), "")
            except TcvpcError as exc:
                _probes[url] = (None, str(exc) or type(exc).__name__)
            finally:
                await probe.aclose()
            logger.debug("CVM probe of %s: %s", url, _probes[url])
        return _probes[url]

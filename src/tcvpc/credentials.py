"""Credentials and where to find them: environment, profile file, or your own provider.

The client asks a :class:`CredentialProvider` for a :class:`Credential` before signing each
attempt. The interface is async so that refreshing providers (a CVM role, STS) can fetch new
temporary keys without blocking the event loop, and without the client knowing about them.
Secrets never appear in ``repr()``/``str()``: a credential prints as its secret id's prefix.
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from tcvpc.errors import CredentialsNotFoundError

ENV_SECRET_ID = "TENCENTCLOUD_SECRET_ID"  # noqa: S105 (a variable name)
ENV_SECRET_KEY = "TENCENTCLOUD_SECRET_KEY"  # noqa: S105 (a variable name)
ENV_TOKEN = "TENCENTCLOUD_TOKEN"  # noqa: S105 (a variable name)
ENV_CREDENTIALS_FILE = "TENCENTCLOUD_CREDENTIALS_FILE"
DEFAULT_CREDENTIALS_FILE = Path("~/.tencentcloud/credentials")


def _mask(secret_id: str) -> str:
    return secret_id[:8] + "…" if len(secret_id) > 8 else "…"


@dataclass(frozen=True, slots=True)
class Credential:
    """An API key pair, plus a session token for temporary credentials.

    Immutable so that it can be shared between tasks and used as a limiter key. ``secret_key``
    and ``token`` are excluded from ``repr``, equality stays on all three fields.
    """

    secret_id: str
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.secret_id, str) or not self.secret_id.strip():
            raise ValueError("Credential: secret_id must be a non-empty string")
        if not isinstance(self.secret_key, str) or not self.secret_key:
            raise ValueError("Credential: secret_key must be a non-empty string")
        if self.token is not None and not isinstance(self.token, str):
            raise ValueError("Credential: token must be a string or None")

    def __repr__(self) -> str:
        token = ", token=…" if self.token else ""
        return f"Credential(secret_id={_mask(self.secret_id)!r}{token})"

    __str__ = __repr__


@runtime_checkable
class CredentialProvider(Protocol):
    """Anything that can hand out a current credential; called once per attempt."""

    async def get(self) -> Credential: ...


@dataclass(frozen=True, slots=True)
class StaticProvider:
    """A provider for a fixed credential (what ``VpcClient(credential=Credential(...))`` uses)."""

    credential: Credential

    async def get(self) -> Credential:
        return self.credential


def from_environment(environ: dict[str, str] | None = None) -> Credential | None:
    """The credential in ``TENCENTCLOUD_SECRET_ID``/``_SECRET_KEY``/``_TOKEN``, if both are set."""
    env = os.environ if environ is None else environ
    secret_id = env.get(ENV_SECRET_ID, "").strip()
    secret_key = env.get(ENV_SECRET_KEY, "").strip()
    if not secret_id or not secret_key:
        return None
    token = env.get(ENV_TOKEN, "").strip() or None
    return Credential(secret_id, secret_key, token)


def profile_path(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    configured = env.get(ENV_CREDENTIALS_FILE, "").strip()
    return Path(configured).expanduser() if configured else DEFAULT_CREDENTIALS_FILE.expanduser()


def from_profile(path: Path) -> Credential | None:
    """The ``[default]`` section's ``secret_id``/``secret_key`` of an INI profile file.

    A missing file is "not found"; a file that exists but cannot be parsed is an error, since
    silently skipping a broken profile would send the user hunting in the wrong place.
    """
    if not path.is_file():
        return None
    parser = configparser.ConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError) as exc:
        raise CredentialsNotFoundError(
            f"credentials file {path} is unreadable: {type(exc).__name__}"
        ) from None
    if not parser.has_section("default"):
        return None
    secret_id = parser.get("default", "secret_id", fallback="").strip()
    secret_key = parser.get("default", "secret_key", fallback="").strip()
    if not secret_id or not secret_key:
        return None
    return Credential(secret_id, secret_key)


def default_credential(environ: dict[str, str] | None = None) -> Credential:
    """The first credential of the default chain: environment, then the profile file.

    Raises one :class:`CredentialsNotFoundError` that names every place it looked.
    """
    found = from_environment(environ)
    if found is not None:
        return found
    path = profile_path(environ)
    found = from_profile(path)
    if found is not None:
        return found
    raise CredentialsNotFoundError(
        "no Tencent Cloud credentials found; looked in: "
        f"environment variables {ENV_SECRET_ID} and {ENV_SECRET_KEY}; "
        f"profile file {path} (section [default], keys secret_id and secret_key; "
        f"{ENV_CREDENTIALS_FILE} names another file)"
    )

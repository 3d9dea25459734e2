"""The one exception every layer of the emulator raises to answer with an API error.

``app.py`` turns it into the envelope (HTTP 200, ``Response.Error.{Code, Message}``); the layers
that raise it (signature checks, the state machine, the handlers) only name the code.
"""

from __future__ import annotations

__all__ = ["EmuApiError", "EmuAuthError", "EmuStateError"]


class EmuApiError(Exception):
    """An API error answer; ``code`` is the API error code, ``message`` its text."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class EmuAuthError(EmuApiError):
    """The request failed authentication (raised by ``auth.py``)."""


class EmuStateError(EmuApiError):
    """The state machine refused an action (raised by ``state.py``)."""

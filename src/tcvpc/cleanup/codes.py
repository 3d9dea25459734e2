"""Codes the cleanup job itself gives to a ``failed`` outcome (the API's codes are in errors.py).

They appear in the journal, the report's ``code`` column and the summary's top failures; each is
defined here once so the engine, the command and the tests agree on the spelling.
"""

from __future__ import annotations

__all__ = ["DELETE_NOT_CONFIRMED", "NOT_FOUND_BUT_PRESENT", "WRONG_GATEWAY"]

WRONG_GATEWAY = "WrongGateway"
"""The delete answered not-found, but a tunnel with this ID exists under another gateway: the
input names the wrong gateway. Nothing was deleted; the message names the real gateway."""

NOT_FOUND_BUT_PRESENT = "NotFoundButPresent"
"""The delete kept answering not-found while a lookup kept finding the tunnel, not deleting,
under the named gateway (the delete was retried ``max_requeues`` times)."""

DELETE_NOT_CONFIRMED = "DeleteNotConfirmed"
"""``--wait``: the delete was accepted, but the tunnel did not disappear."""

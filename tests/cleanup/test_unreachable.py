"""Issue 11, point 3: an API that cannot be reached stops the job; nothing untried is failed."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cleanup_fakes import FakeVpc, make_refs

from tcvpc.cleanup.engine import CleanupEngine
from tcvpc.cleanup.journal import Journal
from tcvpc.errors import ResponseError, TcvpcError, TransportError
from tcvpc.models import DeleteResult, TunnelRef
from tcvpc.retry import RetryPolicy

MakeJournal = Callable[[Sequence[TunnelRef]], Journal]


class DeadAfter(FakeVpc):
    """Answers ``ok`` deletes, then raises ``error`` for every later one."""

    def __init__(self, refs: Sequence[TunnelRef], ok: int, error: TcvpcError) -> None:
        super().__init__(refs, delete_seconds=0.0)
        self.ok = ok
        self.error = error

    async def delete_vpn_connection(
        self,
        *,
        vpn_gateway_id: str,
        vpn_connection_id: str,
        missing_ok: bool = False,
        retry_policy: RetryPolicy | None = None,
    ) -> DeleteResult:
        if self.ok <= 0:
            self.deletes.append((0.0, vpn_gateway_id, vpn_connection_id))
            raise self.error
        self.ok -= 1
        return await super().delete_vpn_connection(
            vpn_gateway_id=vpn_gateway_id,
            vpn_connection_id=vpn_connection_id,
            missing_ok=missing_ok,
            retry_policy=retry_policy,
        )


def refused() -> TransportError:
    return TransportError(
        "DeleteVpnConnection: cannot connect to 127.0.0.1:9: refused",
        action="DeleteVpnConnection",
        outcome_unknown=False,
    )


async def test_a_first_delete_that_cannot_connect_stops_the_job(
    make_journal: MakeJournal,
) -> None:
    refs = make_refs(4, 5)
    fake = DeadAfter(refs, ok=0, error=refused())
    summary = await CleanupEngine(fake, make_journal(refs)).run()
    assert isinstance(summary.fatal, TransportError)
    assert len(fake.deletes) == 1  # it went out alone: nothing else was tried
    assert summary.counts["pending"] == 20
    assert summary.counts["failed"] == 0


async def test_a_first_answer_that_is_not_the_apis_stops_the_job(
    make_journal: MakeJournal,
) -> None:
    """A web server or proxy at the endpoint (a wrong URL): its page is not an API answer."""
    refs = make_refs(2, 2)
    page = ResponseError("not an API answer", action="x", status=404, excerpt="<html>")
    journal = make_journal(refs)
    summary = await CleanupEngine(DeadAfter(refs, ok=0, error=page), journal).run()
    assert summary.fatal is page
    assert summary.counts["pending"] == 4
    # It may have reached something that acted: the tunnel keeps the unknown-outcome bit.
    unknown = journal._one("SELECT COUNT(*) FROM tunnels WHERE unknown = 1")
    assert unknown == (1,)


async def test_mid_run_a_delete_that_cannot_connect_stops_the_job(
    make_journal: MakeJournal,
) -> None:
    refs = make_refs(3, 10)
    fake = DeadAfter(refs, ok=5, error=refused())
    summary = await CleanupEngine(fake, make_journal(refs)).run()
    assert isinstance(summary.fatal, TransportError)
    assert summary.counts["deleted"] == 5
    assert summary.counts["failed"] == 0
    assert summary.counts["pending"] == 25


async def test_mid_run_a_proxy_error_fails_only_its_tunnel(make_journal: MakeJournal) -> None:
    """After the first answer proved the endpoint, a 502 (after retries) is that call's failure."""
    refs = make_refs(2, 2)
    bad = ResponseError("bad gateway", action="x", status=502, excerpt="")
    summary = await CleanupEngine(DeadAfter(refs, ok=1, error=bad), make_journal(refs)).run()
    assert summary.fatal is None
    assert summary.counts["deleted"] == 1
    assert summary.counts["failed"] == 3

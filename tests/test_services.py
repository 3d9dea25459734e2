"""What a service leans on: deadlines over queueing, load shedding, honest outcomes, telemetry,
hooks that cannot break calls, one client per event loop. Against the emulator over loopback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import warnings
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tcvpc import (
    CallEvent,
    Credential,
    DeadlineExceededError,
    DeleteOutcome,
    EventLoopError,
    QueueFullError,
    RetryBudget,
    RetryEvent,
    RetryPolicy,
    ServerError,
    TcvpcError,
    TransportError,
    UnknownOutcomes,
    VpcClient,
)
from tcvpc.emulator import (
    DEMO_REGION,
    DEMO_SECRET_ID,
    DEMO_SECRET_KEY,
    Emulator,
    EmulatorConfig,
    FaultConfig,
)
from tcvpc.retry import Backoff

DEMO = Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY)
QUICK = RetryPolicy(
    max_attempts=10,
    deadline=30,
    transient=Backoff(0.01, 0.05, 10),
    throttled=Backoff(0.01, 0.05, 10),
)


def client_for(emu: Emulator, **kw: Any) -> VpcClient:
    options: dict[str, Any] = {
        "region": DEMO_REGION,
        "endpoint": emu.url,
        "retry_policy": QUICK,
        "timeout": 5.0,
    }
    options.update(kw)
    return VpcClient(DEMO, **options)


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    config = EmulatorConfig(gateways=20, tunnels_per_gateway=1, delete_seconds=0.0, seed=3)
    async with Emulator(config) as e:
        yield e


def sent_to_server(emu: Emulator, action: str = "DeleteVpnConnection") -> int:
    requests: dict[str, dict[str, int]] = emu.stats()["requests"]  # type: ignore[assignment]
    return sum(requests.get(action, {}).values())


def delete_of(client: VpcClient, tunnel: dict[str, Any], **kw: Any) -> Any:
    return client.delete_vpn_connection(
        vpn_gateway_id=tunnel["gateway"], vpn_connection_id=tunnel["id"], **kw
    )


# -- 1. bounded waiting ----------------------------------------------------------------------


async def test_deadline_covers_the_wait_for_the_limiter(emu: Emulator) -> None:
    tunnels = emu.tunnels()[:6]
    async with client_for(emu, rate=1.0) as client:
        loop = asyncio.get_running_loop()
        start = loop.time()

        async def timed(tunnel: dict[str, Any]) -> tuple[Any, float]:
            try:
                result: Any = await delete_of(client, tunnel, deadline=1.5)
            except TcvpcError as exc:
                result = exc
            return result, loop.time() - start

        outcomes = await asyncio.gather(*(timed(t) for t in tunnels))
    done = [r for r, _ in outcomes if not isinstance(r, Exception)]
    failed = [r for r, _ in outcomes if isinstance(r, Exception)]
    # At 1/s, one or two start within 1.5 s; the rest fail fast, having sent nothing.
    assert 1 <= len(done) <= 2
    assert all(isinstance(e, DeadlineExceededError) for e in failed), failed
    assert all(not e.sent and not e.outcome_unknown and e.attempts == 0 for e in failed)
    assert "waiting for the rate limiter" in str(failed[0])
    assert max(elapsed for _, elapsed in outcomes) < 1.5 + 1.0  # not 6 s of queueing
    assert sent_to_server(emu) == len(done)
    assert client.metrics().waiting == 0
    # The cut waits left the limiter clean: the next call gets its permit within a window.
    async with client_for(emu, rate=1.0, limiters=client.limiters) as again:
        result = await delete_of(again, emu.tunnels()[10], deadline=2.5)
    assert result.deleted


async def test_deadline_cuts_a_running_attempt_and_the_outcome_is_remembered(
    emu: Emulator,
) -> None:
    first, _ = emu.tunnels()[:2]
    emu.set_faults(FaultConfig.only("stall", 1.0))  # the emulator acts, then stalls
    async with client_for(emu) as client:
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(DeadlineExceededError) as caught:
            await delete_of(client, first, deadline=0.5)
        assert loop.time() - start < 2.0  # the 20 s stall and the 5 s timeout did not count
        assert caught.value.sent
        assert caught.value.outcome_unknown
        assert client.stats.requests_cancelled == 1
        emu.set_faults(FaultConfig())
        await asyncio.sleep(0.05)
        # The stalled delete did act; the next delete learns it from the memory.
        result = await delete_of(client, first)
    assert result.outcome is DeleteOutcome.DELETED
    assert result.inferred
    assert result.error_code == "ResourceNotFound"


async def test_a_retry_that_cannot_start_in_time_keeps_the_unknown_outcome(
    emu: Emulator,
) -> None:
    tunnel = emu.tunnels()[0]
    emu.set_faults(FaultConfig.only("drop_after_action", 1.0))  # deleted, answer lost
    async with client_for(emu, rate=1.0) as client:
        with pytest.raises(DeadlineExceededError) as caught:
            await delete_of(client, tunnel, deadline=0.3)  # the retry's permit is ~0.5 s away
        assert caught.value.attempts == 1
        assert caught.value.after_unknown_outcome
        assert "waiting for the rate limiter" in str(caught.value)
        emu.set_faults(FaultConfig())
        result = await delete_of(client, tunnel)
    assert result.outcome is DeleteOutcome.DELETED
    assert result.inferred


async def test_max_waiting_sheds_new_calls_and_sends_nothing(emu: Emulator) -> None:
    tunnels = emu.tunnels()[:6]
    async with client_for(emu, rate=1.0, max_waiting=2) as client:
        tasks = [asyncio.create_task(delete_of(client, t)) for t in tunnels]
        await asyncio.sleep(0.2)
        depth = client.metrics().waiting
        shed = [t for t in tasks if t.done() and isinstance(t.exception(), QueueFullError)]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert depth == 2
    assert len(shed) == 3  # one running, two waiting, three shed
    exc = shed[0].exception()
    assert isinstance(exc, QueueFullError)
    assert exc.max_waiting == 2
    assert "max_waiting=2" in str(exc)
    assert client.metrics().shed == 3
    assert sent_to_server(emu) == 1


def test_max_waiting_is_validated() -> None:
    for bad in (0, -1, True):
        with pytest.raises(ValueError, match="max_waiting"):
            VpcClient(DEMO, region=DEMO_REGION, max_waiting=bad)


# -- 2. honest outcomes ----------------------------------------------------------------------


async def test_a_cancelled_delete_is_remembered_and_a_later_not_found_is_inferred(
    emu: Emulator,
) -> None:
    mine, other = emu.tunnels()[:2]
    emu.set_faults(FaultConfig.only("stall", 1.0))
    async with client_for(emu) as client, client_for(emu) as fresh:
        for tunnel in (mine, other):
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(delete_of(client, tunnel), timeout=0.3)
        assert client.stats.requests_sent == 2
        assert client.stats.requests_cancelled == 2
        assert len(client.unknown_outcomes) == 2
        emu.set_faults(FaultConfig())
        remembered = await delete_of(client, mine, missing_ok=True)
        # A client that sent nothing for that tunnel has nothing to infer: someone else did it.
        forgotten = await delete_of(fresh, other, missing_ok=True)
        again = await delete_of(client, mine, missing_ok=True)
    assert remembered.outcome is DeleteOutcome.DELETED
    assert remembered.inferred
    assert forgotten.outcome is DeleteOutcome.ALREADY_GONE
    assert not forgotten.inferred
    assert again.outcome is DeleteOutcome.ALREADY_GONE  # reported once, then forgotten


async def test_cancelled_while_queued_is_not_counted_as_sent_nor_remembered(
    emu: Emulator,
) -> None:
    first, second = emu.tunnels()[:2]
    async with client_for(emu, rate=1.0) as client:
        await delete_of(client, first)
        waiting = asyncio.create_task(delete_of(client, second))
        await asyncio.sleep(0.1)
        assert client.metrics().waiting == 1
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert client.stats.requests_sent == 1
        assert client.stats.requests_cancelled == 0
        assert len(client.unknown_outcomes) == 0
        assert client.metrics().calls[("DeleteVpnConnection", "cancelled")] == 1


def test_unknown_outcomes_is_bounded_in_size_and_time() -> None:
    now = [0.0]
    memory = UnknownOutcomes(max_entries=3, ttl=10.0, clock=lambda: now[0])
    for key in "abcd":
        memory.remember(key)
    assert len(memory) == 3
    assert "a" not in memory
    now[0] = 11.0
    assert "b" not in memory
    assert len(memory) == 0
    memory.remember("e")
    assert memory.pop("e")
    assert not memory.pop("e")
    with pytest.raises(ValueError, match="max_entries"):
        UnknownOutcomes(max_entries=0)


async def test_a_cancelled_call_returns_what_it_took_from_the_budget(emu: Emulator) -> None:
    tunnels = emu.tunnels()[:2]
    emu.set_faults(FaultConfig.only("internal_error", 1.0))
    slow = RetryPolicy(max_attempts=30, deadline=30, transient=Backoff(0.2, 0.2, 30))
    async with client_for(emu, retry_budget=RetryBudget(capacity=100), retry_policy=slow) as c:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(delete_of(c, tunnels[0]), timeout=0.5)
        assert c.retry_budget.available == 100  # cancelled: everything returned
        with pytest.raises(ServerError):  # the same failures, not cancelled: the budget pays
            await delete_of(c, tunnels[1], retry_policy=RetryPolicy(max_attempts=5).without_waits())
        assert c.retry_budget.available == 100 - 4 * 5


async def test_an_error_says_when_the_retry_budget_stopped_it(emu: Emulator) -> None:
    emu.set_faults(FaultConfig.only("internal_error", 1.0))
    budget = RetryBudget(capacity=5, retry_cost=5)
    async with client_for(emu, retry_budget=budget) as client:
        with pytest.raises(ServerError) as caught:
            await delete_of(client, emu.tunnels()[0])
        with pytest.raises(ServerError) as second:
            await delete_of(client, emu.tunnels()[1])
    assert caught.value.retry_budget_exhausted
    assert caught.value.attempts == 2
    assert "retry budget is exhausted" in str(caught.value)
    assert second.value.retry_budget_exhausted
    assert second.value.attempts == 1


# -- 3. hooks, telemetry, logging ------------------------------------------------------------


async def test_a_raising_retry_hook_is_logged_not_fatal(
    emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    emu.set_faults(FaultConfig.only("internal_error", 1.0))
    calls: list[RetryEvent] = []

    def broken(event: RetryEvent) -> None:
        calls.append(event)
        if len(calls) == 2:
            emu.set_faults(FaultConfig())  # the third attempt succeeds
        raise KeyError("hook bug")

    async with client_for(emu, on_retry=broken) as client:
        with caplog.at_level(logging.ERROR, logger="tcvpc"):
            result = await delete_of(client, emu.tunnels()[0])
    assert result.deleted
    assert result.attempts == 3
    assert len(calls) == 2
    hook_logs = [r for r in caplog.records if "on_retry hook raised" in r.getMessage()]
    assert len(hook_logs) == 2
    assert hook_logs[0].exc_info is not None


async def _async_hook(event: object) -> None:
    return None


class _AsyncCallable:
    async def __call__(self, event: object) -> None:
        return None


@pytest.mark.parametrize("hook", [_async_hook, _AsyncCallable(), "not callable"])
@pytest.mark.parametrize("name", ["on_retry", "on_call"])
def test_async_or_non_callable_hooks_are_refused_at_construction(hook: Any, name: str) -> None:
    with pytest.raises(TypeError, match=name):
        VpcClient(DEMO, region=DEMO_REGION, **{name: hook})


async def test_a_hook_returning_a_coroutine_is_reported_not_leaked(
    emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    async with client_for(emu, on_call=lambda event: _async_hook(event)) as client:
        with warnings.catch_warnings(), caplog.at_level(logging.ERROR, logger="tcvpc"):
            warnings.simplefilter("error")
            await delete_of(client, emu.tunnels()[0])
    assert any("returned an awaitable" in r.getMessage() for r in caplog.records)


async def test_on_call_events_and_metrics_snapshot(emu: Emulator) -> None:
    events: list[CallEvent] = []
    gone = emu.tunnels()[0]
    async with client_for(emu, on_call=events.append, rate=50.0) as client:
        await delete_of(client, gone)
        with pytest.raises(TcvpcError):
            await delete_of(client, gone)  # ResourceNotFound, missing_ok=False
        task = asyncio.create_task(delete_of(client, emu.tunnels()[1]))
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        metrics = client.metrics()
    assert [e.outcome for e in events] == ["ok", "error", "cancelled"]
    ok, error, _ = events
    assert ok.code is None
    assert ok.request_id
    assert ok.attempts == 1
    assert ok.latency > 0
    assert error.code == "ResourceNotFound"
    assert error.request_id
    assert all(e.queue_wait >= 0 and e.queue_wait <= e.latency for e in events)
    assert metrics.calls == {
        ("DeleteVpnConnection", "ok"): 1,
        ("DeleteVpnConnection", "error"): 1,
        ("DeleteVpnConnection", "cancelled"): 1,
    }
    assert metrics.call_seconds["DeleteVpnConnection"] >= ok.latency
    assert metrics.rates == {"DeleteVpnConnection": pytest.approx(50.0)}
    assert metrics.waiting == 0
    assert metrics.in_flight == 0
    assert metrics.requests_sent == client.stats.requests_sent >= 2
    assert metrics.retry_budget_available == client.retry_budget.available


async def test_retries_log_at_debug_and_a_failure_logs_once_with_fields(
    emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    emu.set_faults(FaultConfig.only("internal_error", 1.0))
    policy = RetryPolicy(max_attempts=3).without_waits()
    async with client_for(emu, retry_policy=policy) as client:
        with caplog.at_level(logging.DEBUG, logger="tcvpc"), pytest.raises(ServerError) as caught:
            await delete_of(client, emu.tunnels()[0])
    retries = [r for r in caplog.records if r.getMessage().startswith("retrying")]
    assert len(retries) == 2
    assert all(r.levelno == logging.DEBUG for r in retries)
    assert [r.levelno for r in caplog.records if r.levelno >= logging.INFO] == [logging.WARNING]
    failure = next(r for r in caplog.records if r.levelno == logging.WARNING)
    assert failure.tcvpc_code == "InternalError"  # type: ignore[attr-defined]
    assert failure.tcvpc_attempts == 3  # type: ignore[attr-defined]
    assert failure.tcvpc_request_id == caught.value.request_id  # type: ignore[attr-defined]
    assert caught.value.request_id in failure.getMessage()


async def test_a_not_found_delete_is_an_answer_not_a_warning(
    emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    tunnel = emu.tunnels()[0]
    async with client_for(emu) as client:
        await delete_of(client, tunnel)
        with caplog.at_level(logging.INFO, logger="tcvpc"):
            result = await delete_of(client, tunnel, missing_ok=True)
    assert result.outcome is DeleteOutcome.ALREADY_GONE
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# -- 4. one client, one event loop -----------------------------------------------------------

REFUSED = "http://127.0.0.1:9/"  # nothing listens: each call fails fast, after binding its loop


def _refused_client() -> VpcClient:
    return VpcClient(
        DEMO, region=DEMO_REGION, endpoint=REFUSED, retry_policy=RetryPolicy.no_retries()
    )


async def _use(client: VpcClient) -> BaseException | None:
    try:
        await client.call("DescribeVpnConnections", {})
    except BaseException as exc:
        return exc
    return None


def test_a_client_made_at_import_time_used_by_two_asyncio_runs() -> None:
    client = _refused_client()  # no loop yet, as at import time

    async def use_then_close() -> BaseException | None:
        try:
            return await _use(client)
        finally:
            await client.aclose()

    first = asyncio.run(use_then_close())
    second = asyncio.run(_use(client))
    assert isinstance(first, TransportError)  # the first loop owns it
    assert isinstance(second, EventLoopError)  # not ClientClosedError: the loop is checked first
    assert isinstance(second, TcvpcError)
    assert "Create the client inside the loop" in str(second)


def test_a_client_shared_by_two_threads_each_with_a_loop() -> None:
    client = _refused_client()
    results: list[BaseException | None] = []
    barrier = threading.Barrier(2)

    def worker() -> None:
        async def main() -> BaseException | None:
            barrier.wait(timeout=5)
            outcomes = [await _use(client) for _ in range(3)]
            with contextlib.suppress(EventLoopError):  # only the owning loop can close it
                await client.aclose()
            return next((o for o in outcomes if isinstance(o, EventLoopError)), outcomes[0])

        results.append(asyncio.run(main()))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert time.monotonic() - start < 20
    assert sorted(type(r).__name__ for r in results) == ["EventLoopError", "TransportError"]


async def test_closing_from_a_live_foreign_loop_is_refused() -> None:
    client = _refused_client()
    await _use(client)

    def close_elsewhere() -> BaseException | None:
        try:
            asyncio.run(client.aclose())
        except BaseException as exc:
            return exc
        return None

    error = await asyncio.to_thread(close_elsewhere)
    assert isinstance(error, EventLoopError)
    await client.aclose()

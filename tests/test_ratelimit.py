"""The limiter, measured where it matters: request arrivals at a real server on 127.0.0.1.

Timing bounds here are generous on purpose (this machine is shared); the precise figures live in
benchmarks/.
"""

from __future__ import annotations

import asyncio
import bisect
import gc
import math
import random
import subprocess
import sys
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tcvpc import Credential, LimiterRegistry, RetryPolicy, StrictRateLimiter, VpcClient
from tcvpc.adaptive import BETA
from tcvpc.ratelimit import AdaptiveLimiter, Permit, RateLimiter, shared_limiters


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """The largest number of events that started in any sliding window of this length."""
    ordered = sorted(times)
    return max(
        (bisect.bisect_left(ordered, t + window) - i for i, t in enumerate(ordered)), default=0
    )


def test_max_in_window_counts_sliding_not_fixed_windows() -> None:
    # 3 events at 0.9 and 3 at 1.1: fixed 1-s windows see 3 each, a sliding window sees 6.
    assert max_in_window([0.9, 0.9, 0.9, 1.1, 1.1, 1.1]) == 6
    assert max_in_window([0.0, 1.0, 2.0]) == 1


@pytest.fixture
async def arrivals() -> AsyncIterator[tuple[str, list[float]]]:
    """A server that records when each request arrived and answers success."""
    times: list[float] = []

    async def handle(request: web.Request) -> web.Response:
        times.append(time.monotonic())
        await request.read()
        return web.json_response({"Response": {"RequestId": "r"}})

    app = web.Application()
    app.router.add_post("/", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", times
    await runner.cleanup()


@pytest.fixture
def arrival_server() -> Iterator[str]:
    """The recording server in its own process (see arrival_server.py)."""
    script = Path(__file__).with_name("arrival_server.py")
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)


@pytest.mark.slow
async def test_default_rate_is_strict_and_saturating(arrival_server: str) -> None:
    url = arrival_server
    n = 500
    async with VpcClient(
        Credential("AKIDtest", "k"), region="ap-guangzhou", endpoint=url
    ) as client:
        sem = asyncio.Semaphore(200)

        async def one(i: int) -> None:
            async with sem:
                await client.delete_vpn_connection(
                    vpn_gateway_id="vpngw-aaaaaaaa", vpn_connection_id=f"vpnx-{i:08d}"
                )

        await asyncio.gather(*(one(i) for i in range(n)))
    async with aiohttp.ClientSession() as session, session.get(f"{url}/arrivals") as resp:
        times = await resp.json()
    assert len(times) == n
    assert max_in_window(times) <= 100
    sustained = (n - 1) / (max(times) - min(times))
    assert sustained >= 98, sustained


@pytest.mark.slow
async def test_actions_have_separate_budgets(arrivals: tuple[str, list[float]]) -> None:
    url, _ = arrivals
    async with VpcClient(
        Credential("AKIDtest", "k"), region="ap-guangzhou", endpoint=url, rate=20
    ) as client:
        start = time.monotonic()
        await asyncio.gather(
            *(client.call("DescribeVpnConnections") for _ in range(20)),
            *(client.call("DeleteVpnConnection") for _ in range(20)),
        )
        elapsed = time.monotonic() - start
    # One shared budget would need ~2 s for 40 requests at 20/s; two budgets need ~1 s.
    assert elapsed < 1.7, elapsed


async def test_limiter_is_fifo() -> None:
    limiter = StrictRateLimiter(200)
    order: list[int] = []

    async def take(i: int) -> None:
        await limiter.acquire()
        order.append(i)

    tasks = []
    for i in range(60):
        tasks.append(asyncio.create_task(take(i)))
        await asyncio.sleep(0)  # arrival order is creation order
    await asyncio.gather(*tasks)
    assert order == list(range(60))


async def test_cancelled_waiters_spend_no_capacity() -> None:
    limiter = StrictRateLimiter(20)
    free = int(limiter._bucket.max_rate)  # granted at once from the full bucket (4 at 20/s)
    done: list[float] = []
    start = time.monotonic()

    async def take() -> None:
        await limiter.acquire()
        done.append(time.monotonic() - start)

    tasks = [asyncio.create_task(take()) for _ in range(40 + free)]
    await asyncio.sleep(0.01)
    assert len(done) == free
    for task in tasks[free + 1 :: 2]:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert sum(isinstance(r, asyncio.CancelledError) for r in results) == 20
    assert len(done) == 20 + free
    # 20 waiting tokens at 20/s take ~1 s; leaked tokens for the 20 cancelled would double it.
    assert max(done) < 1.7, max(done)


async def test_registry_separates_actions_and_accounts() -> None:
    reg = LimiterRegistry(50, rates={"DescribeVpnConnections": 10})
    a = reg.get(account="A", region="r", action="DeleteVpnConnection")
    assert a is reg.get(account="A", region="r", action="DeleteVpnConnection")
    assert a is not reg.get(account="B", region="r", action="DeleteVpnConnection")
    assert reg.get(account="A", region="r", action="DescribeVpnConnections").rate == 10
    with pytest.raises(ValueError, match="positive"):
        LimiterRegistry(0)
    with pytest.raises(ValueError, match="positive"):
        StrictRateLimiter(-1)


def throttled_for_a_while(limiter: RateLimiter) -> None:
    """Throttles for the last 2.5 s, none more than a window apart: a share, not a burst."""
    assert isinstance(limiter, AdaptiveLimiter)
    now = time.monotonic()
    for ago in (2.5, 1.7, 0.9):
        limiter.state.on_throttled(now - ago)
    assert limiter.state.w_max is None  # not yet: 1.6 s of throttles may be a passing burst
    limiter.on_throttled()


async def test_adaptive_limiter_follows_the_admitted_rate() -> None:
    now = [100.0]
    limiter = AdaptiveLimiter(StrictRateLimiter(100), persist=0, clock=lambda: now[0])
    assert limiter.rate == 100
    for i in range(70):  # 70 answers admitted over the last second
        now[0] = 100.0 + i / 70
        limiter.on_admitted()
    limiter.on_throttled()
    assert limiter.rate == pytest.approx(BETA * 70, rel=0.03)
    now[0] += 30
    for _ in range(100):
        limiter.on_admitted()
    assert limiter.rate == 100  # climbed back and capped at the strict rate


async def test_throttled_retries_go_through_the_adaptive_rate(
    arrivals: tuple[str, list[float]],
) -> None:
    """After a throttle, new requests and retries alike arrive at the reduced rate."""
    url, times = arrivals
    registry = LimiterRegistry(100)
    async with VpcClient(
        Credential("AKIDtest", "k"),
        region="ap-guangzhou",
        endpoint=url,
        limiters=registry,
        retry_policy=RetryPolicy.no_retries(),
    ) as client:
        limiter = registry.get(
            account="AKIDtest", region="ap-guangzhou", action="DescribeVpnConnections"
        )
        # The server admitted about 10/s for a second, then throttled us.
        for _ in range(11):
            await client.call("DescribeVpnConnections")
            await asyncio.sleep(0.1)
        throttled_for_a_while(limiter)
        assert limiter.rate < 20
        times.clear()
        await asyncio.gather(*(client.call("DescribeVpnConnections") for _ in range(6)))
    # 6 requests at <20/s span at least ~0.25 s; at the full 100/s they would take 0.05 s.
    assert max(times) - min(times) > 0.2


async def test_throttling_slows_the_client_down(arrivals: tuple[str, list[float]]) -> None:
    url, times = arrivals
    registry = LimiterRegistry(100)
    async with VpcClient(
        Credential("AKIDtest", "k"),
        region="ap-guangzhou",
        endpoint=url,
        limiters=registry,
        retry_policy=RetryPolicy.no_retries(),
    ) as client:
        limiter = registry.get(
            account="AKIDtest", region="ap-guangzhou", action="DescribeVpnConnections"
        )
        throttled_for_a_while(limiter)  # nothing admitted yet: half the rate, then beta
        assert limiter.rate == pytest.approx(BETA * 50, rel=0.05)
        await asyncio.gather(*(client.call("DescribeVpnConnections") for _ in range(36)))
    # Arrivals spread over ~0.35 s at the full 100/s and ~0.75 s at 47.5/s.
    assert max(times) - min(times) > 0.55


async def test_clients_of_one_account_share_one_budget_by_default() -> None:
    def client(rate: float = 99.5) -> VpcClient:
        return VpcClient(
            Credential("AKIDshared", "k"),
            region="ap-guangzhou",
            endpoint="http://127.0.0.1:9",
            rate=rate,
        )

    a, b, other_rate = client(), client(), client(50)
    key = {"account": "AKIDshared", "region": "ap-guangzhou", "action": "DeleteVpnConnection"}
    assert a.limiters is b.limiters is shared_limiters()
    assert a.limiters.get(**key) is b.limiters.get(**key)
    assert other_rate.limiters.get(**key) is not a.limiters.get(**key)
    assert other_rate.limiters.get(**key).rate == 50
    for c in (a, b, other_rate):
        await c.aclose()


def test_each_event_loop_gets_its_own_limiters_and_closed_loops_are_dropped() -> None:
    registry = LimiterRegistry(1000)

    async def use() -> AdaptiveLimiter:
        limiter = registry.get(account="A", region="r", action="x")
        assert isinstance(limiter, AdaptiveLimiter)
        for _ in range(5):
            (await limiter.acquire()).release()
        return limiter

    first = asyncio.run(use())
    second = asyncio.run(use())  # a limiter bound to the first (closed) loop would fail here
    assert first is not second
    first_ref = weakref.ref(first)
    del first
    asyncio.run(use())
    gc.collect()
    assert first_ref() is None


async def test_a_limiter_far_above_its_traffic_keeps_a_bounded_number_of_permits() -> None:
    """Slots are never short at this rate, yet the permits of ended requests are still dropped:
    keeping all of them (B1 runs at 1e6/s) would grow without bound."""
    limiter = StrictRateLimiter(1_000_000)
    for _ in range(1000):
        permit = limiter.try_acquire()
        assert permit is not None
        permit.release()
    assert len(limiter._granted) <= 65
    await asyncio.sleep(1.1)  # the ends of those requests leave the window
    for _ in range(100):
        permit = limiter.try_acquire()
        assert permit is not None
        permit.release()
    assert len(limiter._early) <= 100


def test_outside_a_loop_try_acquire_fails_and_takes_no_token() -> None:
    limiter = StrictRateLimiter(2, window_limit=10)  # a bucket of 1.5 tokens: one free
    with pytest.raises(RuntimeError):
        limiter.try_acquire()

    async def grant() -> None:
        permit = limiter.try_acquire()
        assert permit is not None  # the failed call left the one token there
        assert limiter._loop is asyncio.get_running_loop()  # bound by this call, not the failed one

    asyncio.run(grant())


async def test_registry_needs_a_running_loop() -> None:
    registry = LimiterRegistry(10)
    with pytest.raises(RuntimeError):
        await asyncio.to_thread(registry.get, account="A", region="r", action="x")


async def test_adaptive_limiter_is_fifo_and_cancellation_safe() -> None:
    limiter = AdaptiveLimiter(StrictRateLimiter(400), persist=0)
    limiter.on_throttled()  # nothing admitted yet: about 190/s, paced in front of the strict one
    assert limiter.rate < 200
    order: list[int] = []

    async def take(i: int) -> None:
        (await limiter.acquire()).release()
        order.append(i)

    tasks = []
    for i in range(30):
        tasks.append(asyncio.create_task(take(i)))
        await asyncio.sleep(0)  # arrival order is creation order
    for task in tasks[12::3]:  # still waiting: 30 permits at ~190/s take ~0.15 s
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert sum(isinstance(r, asyncio.CancelledError) for r in results) == 6
    assert order == [i for i in range(30) if i < 12 or i % 3]


async def test_a_free_permit_comes_without_suspending() -> None:
    """What the client relies on to skip its deadline timer: ``try_acquire`` never waits, and
    ``acquire`` returns a free permit in one step."""
    for limiter in (StrictRateLimiter(1000), AdaptiveLimiter(StrictRateLimiter(1000))):
        permit = limiter.try_acquire()
        assert permit is not None
        step = limiter.acquire()
        with pytest.raises(StopIteration):
            step.send(None)
        permit.release()


@pytest.mark.parametrize("direct", [True, False])
async def test_taking_a_free_token_fills_the_bucket_as_acquire_does(
    monkeypatch: pytest.MonkeyPatch, direct: bool
) -> None:
    """The non-waiting take (aiolimiter's level directly, or its ``acquire()`` run to completion
    when another aiolimiter has no such level) spends exactly what ``acquire()`` spends: the
    bucket then refuses the same next token."""
    from aiolimiter import AsyncLimiter

    from tcvpc import ratelimit

    if direct:
        assert ratelimit._DIRECT_TAKE  # the aiolimiter this project pins keeps a level
    monkeypatch.setattr(ratelimit, "_DIRECT_TAKE", direct)
    taker = StrictRateLimiter(1000, window_limit=10)
    taken, acquired = AsyncLimiter(3, 1000), AsyncLimiter(3, 1000)  # refills in minutes
    taker._bucket = taken
    for _ in range(3):
        assert taker.try_acquire() is not None
        await acquired.acquire()
    assert taker.try_acquire() is None
    assert not taken.has_capacity()
    assert not acquired.has_capacity()
    assert taken._level == pytest.approx(acquired._level, abs=1e-3)
    limiter = StrictRateLimiter(2, window_limit=10)  # a bucket of 1.5 tokens: one free
    assert limiter.try_acquire() is not None
    assert limiter.try_acquire() is None


async def test_try_acquire_never_overtakes_a_queued_call() -> None:
    # Two permits fill the window; the third call waits for it, the fourth queues behind.
    limiter = StrictRateLimiter(1000, window_limit=2, latency_allowance=0.0)
    for _ in range(2):
        (await limiter.acquire()).release()
    overtaken: list[object] = []

    async def third() -> None:
        (await limiter.acquire()).release()
        # The fourth was woken when the lock passed to it but has not run yet: the window and
        # the bucket would allow a permit now, which must still go to the fourth first.
        overtaken.append(limiter.try_acquire())

    three = asyncio.create_task(third())
    await asyncio.sleep(0)
    four = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    assert limiter.try_acquire() is None  # the window holds
    await asyncio.wait_for(three, 5)
    assert overtaken == [None]
    (await asyncio.wait_for(four, 5)).release()


async def test_permit_release_is_idempotent_and_observable() -> None:
    loop = asyncio.get_running_loop()
    early = Permit(loop)
    assert early.ended is None
    early.release()
    ended = early.ended
    assert ended is not None
    early.release()
    assert early.ended == ended


async def test_a_stalled_answer_holds_its_own_slot_and_no_other() -> None:
    """20 slots: one request stalls, 19 end at once. The next permit takes the first ended
    one's slot one window after that end; only once the other 19 slots are taken again does a
    permit wait for the stalled one's slot (its start, plus the 0.5 s allowance, plus 1 s)."""
    loop = asyncio.get_running_loop()
    limiter = StrictRateLimiter(1000, window_limit=20, latency_allowance=0.5)
    stalled = await limiter.acquire()  # never released: its answer is held back
    quick = []
    for _ in range(19):
        permit = await limiter.acquire()
        permit.release()
        quick.append(permit)
    (await limiter.acquire()).release()
    first = quick[0].ended
    assert first is not None
    assert 1.0 <= loop.time() - first < 1.15  # the first quick request's slot
    assert loop.time() - stalled.started < 1.4  # not held back to the stalled one's 1.5 s
    for _ in range(18):  # the other quick ones' slots, free at about the same time
        (await limiter.acquire()).release()
    assert loop.time() - stalled.started < 1.4
    (await limiter.acquire()).release()  # all 19 others are held: this one needs the stalled slot
    assert 1.5 <= loop.time() - stalled.started < 1.7


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_no_second_holds_more_than_the_limit_wherever_requests_arrive(seed: int) -> None:
    """Random stalls, slow and instant answers. A request reaches the server somewhere between
    its start and its end, or its deadline (start + allowance) if it ends later: wherever in that
    span each one arrives (earliest, latest, random), no sliding second holds more than 20."""
    rng = random.Random(seed)
    limiter = StrictRateLimiter(400, window_limit=20, latency_allowance=0.1)
    permits: list[Permit] = []

    async def one() -> None:
        permit = await limiter.acquire()
        draw = rng.random()
        if draw < 0.1:
            await asyncio.sleep(0.3)  # ends after its deadline
        elif draw < 0.3:
            await asyncio.sleep(rng.uniform(0, 0.1))
        else:
            await asyncio.sleep(0)
        permit.release()
        permits.append(permit)

    await asyncio.gather(*(one() for _ in range(70)))
    latest = [min(p.ended or math.inf, p.deadline) for p in permits]
    earliest = [p.started for p in permits]
    anywhere = [rng.uniform(lo, hi) for lo, hi in zip(earliest, latest, strict=True)]
    assert max(p.started for p in permits) - min(earliest) > 2.5  # the slots held it back
    for arrivals in (latest, earliest, anywhere):
        assert max_in_window(arrivals) <= 20


async def test_the_allowance_follows_slow_requests_and_a_fixed_one_stays() -> None:
    learned = StrictRateLimiter(1000, window_limit=4)
    fixed = StrictRateLimiter(1000, window_limit=4, latency_allowance=0.1)

    async def slow(limiter: StrictRateLimiter) -> None:
        permit = await limiter.acquire()
        await asyncio.sleep(0.3)
        permit.release()

    async def abandoned(limiter: StrictRateLimiter) -> None:
        permit = await limiter.acquire()
        await asyncio.sleep(0.6)
        permit.release(answered=False)  # cancelled, timed out: no round trip to learn from

    unanswered = StrictRateLimiter(1000, window_limit=4)
    await asyncio.gather(*(abandoned(unanswered) for _ in range(6)))
    assert unanswered.latency_allowance == 0.25  # learned nothing: still the initial one
    for limiter in (learned, fixed):
        await asyncio.gather(*(slow(limiter) for _ in range(6)))
    assert learned.latency_allowance >= 0.3  # round trips of 0.3 s: never below them
    assert fixed.latency_allowance == 0.1
    with pytest.raises(ValueError, match="latency_allowance"):
        StrictRateLimiter(10, latency_allowance=-1)
    with pytest.raises(ValueError, match="min_latency_allowance"):
        StrictRateLimiter(10, min_latency_allowance=-1)


async def test_the_allowance_learns_one_duration_per_sample_interval() -> None:
    """At most one sample per 10 ms (the estimator's cost follows time, not traffic): a second
    answer right after the first teaches nothing, one after the interval does."""
    limiter = StrictRateLimiter(1000, window_limit=100)

    def answered_after(seconds: float) -> None:
        permit = limiter.try_acquire()
        assert permit is not None
        permit.started -= seconds  # as if it had been granted that long ago
        permit.release()

    answered_after(0.5)
    assert limiter.latency_allowance == pytest.approx(0.5 + 4 * 0.25, abs=0.01)
    answered_after(5.0)  # within the interval: not a sample
    assert limiter.latency_allowance == pytest.approx(1.5, abs=0.01)
    await asyncio.sleep(0.02)
    answered_after(5.0)
    assert limiter.latency_allowance > 2.0

"""The fleet quota against a real redis-server (see redis_fixture.py): one process's view.

Several processes against one emulator live in tests/cleanup/test_fleet.py. Timing bounds are
generous (the machine is shared); measured figures live in benchmarks/b5_fleet.py.
"""

from __future__ import annotations

import asyncio
import math
import uuid

import pytest
import redis.asyncio as aioredis

from redis_fixture import RedisFactory, RedisServer, free_port
from tcvpc.emulator import Emulator
from tcvpc.errors import QuotaBackendError, TcvpcError
from tcvpc.redis_limiter import (
    BETA,
    C,
    QuotaBackendEvent,
    RedisLimiterRegistry,
    _ClockOffset,
    cubic_rate,
    redact_url,
)

SECRET_ID = "AKIDfleetTEST0123456789"


def registry(server: RedisServer, **kwargs: object) -> RedisLimiterRegistry:
    kwargs.setdefault("prefix", f"t{uuid.uuid4().hex[:8]}")
    return RedisLimiterRegistry(server.url, **kwargs)  # type: ignore[arg-type]


def assert_no_secret(exc: BaseException, *secrets: str) -> None:
    text = str(exc) + repr(exc)
    for secret in secrets:
        assert secret not in text
    assert exc.__cause__ is None
    assert exc.__context__ is None


# -- the curve ---------------------------------------------------------------------------------


@pytest.mark.parametrize("beta", [BETA, 0.95])
async def test_lua_cubic_matches_python(redis_server: RedisServer, beta: float) -> None:
    async with registry(redis_server, beta=beta) as reg:
        for w_max in (1.0, 37.5, 99.0, 100.0):
            for elapsed in (0.0, 0.3, 1.0, 2.5, 4.2, 6.0, 10.0):
                lua = await reg.cubic_in_redis(elapsed, w_max)
                py = cubic_rate(elapsed, w_max, beta=beta, c=C)
                assert math.isclose(lua, py, rel_tol=1e-9, abs_tol=1e-9), (elapsed, w_max)
    # The curve's shape, so a wrong formula on both sides cannot pass: beta*W at 0, W at K.
    k = math.cbrt(100 * (1 - BETA) / C)
    assert math.isclose(cubic_rate(0.0, 100.0), BETA * 100.0)
    assert math.isclose(cubic_rate(k, 100.0), 100.0)
    assert cubic_rate(k + 1, 100.0) > 100.0


# -- the clock offset ---------------------------------------------------------------------------


def test_clock_offset_bounds_come_from_the_fastest_recent_round_trip() -> None:
    clock = _ClockOffset()
    # True offset 100.0; Redis read TIME somewhere inside each round trip.
    assert clock.add(sent=0.0, received=0.050, redis_now=100.010) == pytest.approx((99.96, 100.01))
    lower, upper = clock.add(sent=0.100, received=0.102, redis_now=100.101)
    assert (lower, upper) == pytest.approx((99.999, 100.001))  # the fast one tightens both
    lower, upper = clock.add(sent=0.200, received=0.260, redis_now=100.250)
    assert (lower, upper) == pytest.approx((99.999, 100.001))  # a slow one does not loosen them
    # Two seconds later the old samples are gone; a Redis clock jump starts afresh.
    assert clock.add(sent=2.3, received=2.31, redis_now=102.305) == pytest.approx((99.995, 100.005))
    assert clock.add(sent=2.4, received=2.41, redis_now=50.405) == pytest.approx((47.995, 48.005))


# -- failures at start: clear, typed, no password ------------------------------------------------


async def test_unreachable_url_is_a_clear_error_without_the_password() -> None:
    port = free_port()  # nothing listens there
    reg = RedisLimiterRegistry(f"redis://:hunter2@127.0.0.1:{port}/0")
    with pytest.raises(QuotaBackendError) as info:
        await reg.check()
    await reg.aclose()
    assert isinstance(info.value, TcvpcError)
    assert f"cannot reach Redis at redis://:***@127.0.0.1:{port}/0" in str(info.value)
    assert_no_secret(info.value, "hunter2")


async def test_wrong_password_is_a_clear_error(redis_factory: RedisFactory) -> None:
    server = redis_factory(password="right-one")
    wrong = f"redis://:wrong-one@127.0.0.1:{server.port}/0"
    for url in (wrong, f"redis://127.0.0.1:{server.port}/0"):
        reg = RedisLimiterRegistry(url)
        with pytest.raises(QuotaBackendError, match="refused the credentials") as info:
            await reg.check()
        await reg.aclose()
        assert_no_secret(info.value, "wrong-one", "right-one")
    async with RedisLimiterRegistry(server.url) as reg:
        await reg.check()  # the right one works


async def test_a_port_that_is_not_redis_is_a_clear_error(tcvpc_emulator: Emulator) -> None:
    async with RedisLimiterRegistry(f"redis://127.0.0.1:{tcvpc_emulator.port}/0") as reg:
        with pytest.raises(QuotaBackendError, match="is it a Redis server"):
            await reg.check()
    assert tcvpc_emulator.stats()["requests_total"] == 0  # an HTTP error, not an API request


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:6379", "scheme must be"),
        ("redis://:pw@10.1.2.3:6379/0", "clear text"),
        ("redis://example.invalid:6379", "clear text"),
    ],
)
def test_bad_urls_are_refused_before_connecting(url: str, message: str) -> None:
    with pytest.raises(QuotaBackendError, match=message) as info:
        RedisLimiterRegistry(url)
    assert_no_secret(info.value, ":pw@")


def test_redact_url() -> None:
    assert redact_url("rediss://user:p%40ss@cache:6380/2?password=x") == (
        "rediss://user:***@cache:6380/2"
    )
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_rejects_nonsense_settings() -> None:
    for kwargs in ({"rate": 0}, {"rate": float("nan")}, {"beta": 1.5}, {"prefix": "a{b}"}):
        with pytest.raises(ValueError, match=r"rate|beta|prefix"):
            RedisLimiterRegistry("redis://127.0.0.1:1/0", **kwargs)  # type: ignore[arg-type]


# -- keys --------------------------------------------------------------------------------------


async def test_keys_share_a_hash_tag_and_never_hold_the_secret_id(
    redis_server: RedisServer,
) -> None:
    async with registry(redis_server) as reg:
        for action in ("DeleteVpnConnection", "DescribeVpnConnections"):
            permit = await reg.get(
                account=SECRET_ID, region="ap-guangzhou", action=action
            ).acquire()
            permit.release()
        keys = sorted(k.decode() for k in await reg.redis.keys(f"{{{reg.prefix}:*"))
    assert len(keys) == 4  # slots + state for each action: separate budgets
    for key in keys:
        assert SECRET_ID not in key
        assert key.split("}")[0].count("{") == 1
    tags = {key.split("}")[0] for key in keys}
    assert len(tags) == 2  # one hash tag per budget: both keys of a budget on one shard


async def test_an_account_named_by_the_fleet_overrides_per_process_names(
    redis_server: RedisServer,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    async with (
        RedisLimiterRegistry(redis_server.url, prefix=prefix) as a,
        RedisLimiterRegistry(redis_server.url, prefix=prefix, account=SECRET_ID) as b,
    ):
        a.use_account(SECRET_ID)
        # What two clients with credential providers pass: a name each process makes up.
        la = a.get(account="provider-1", region="r", action="x")
        lb = b.get(account="provider-2", region="r", action="x")
        assert la._keys == lb._keys
        with pytest.raises(ValueError, match="account"):
            a.use_account("")


# -- the limiter -------------------------------------------------------------------------------


async def test_fifo_and_cancelled_waiters_take_no_slot(redis_server: RedisServer) -> None:
    async with registry(redis_server, rate=20) as reg:
        limiter = reg.get(account=SECRET_ID, region="r", action="a")
        granted: list[int] = []

        async def one(i: int) -> None:
            permit = await limiter.acquire()
            granted.append(i)
            permit.release()

        tasks = [asyncio.create_task(one(i)) for i in range(20)]
        await asyncio.sleep(0.15)  # the first few are through; 15-19 wait for the lock
        for task in tasks[15:]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        state = await reg.redis.hgetall(limiter._keys[1])
    assert granted == list(range(len(granted)))
    assert len(granted) == 15
    assert int(state[b"seq"]) == 15  # no reservation for the cancelled waiters


async def test_window_guard_counts_from_when_requests_ended(redis_server: RedisServer) -> None:
    # rate 10 (n = 10): spacing alone would start the 11th 1.0 s after the 1st *started*;
    # the 1st ran for 0.2 s, so the 11th must wait until 1 s after it *ended*.
    async with registry(redis_server, rate=10) as reg:
        limiter = reg.get(account=SECRET_ID, region="r", action="a")
        loop = asyncio.get_running_loop()
        first = await limiter.acquire()
        ended_first = loop.time() + 0.2
        loop.call_at(ended_first, first.release)
        for _ in range(9):
            (await limiter.acquire()).release()
        eleventh = await limiter.acquire()
    assert eleventh.started - ended_first >= 0.99


async def test_every_permit_starts_a_second_after_the_nth_before_it_ended(
    redis_server: RedisServer,
) -> None:
    # Requests of varied length (the guard binds) from concurrent tasks (the catch-up bursts):
    # the (k+n)-th start is always a second after the k-th end, on this process's clock.
    async with registry(redis_server, rate=20) as reg:
        limiter = reg.get(account=SECRET_ID, region="r", action="a")
        loop = asyncio.get_running_loop()
        spans: list[tuple[float, float]] = []

        async def one(i: int) -> None:
            permit = await limiter.acquire()
            await asyncio.sleep((i * 37 % 10) / 50)  # 0 to 0.18 s
            permit.release()
            spans.append((permit.started, loop.time()))

        await asyncio.gather(*(one(i) for i in range(60)))
    spans.sort()
    n = reg.window_limit
    gaps = [spans[k + n][0] - spans[k][1] for k in range(len(spans) - n)]
    assert min(gaps) >= 1.0


async def test_one_throttle_slows_every_process_once(redis_server: RedisServer) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    # Two registries on one prefix: two processes of one fleet.
    async with (
        RedisLimiterRegistry(redis_server.url, prefix=prefix) as a,
        RedisLimiterRegistry(redis_server.url, prefix=prefix) as b,
    ):
        la = a.get(account=SECRET_ID, region="r", action="x")
        lb = b.get(account=SECRET_ID, region="r", action="x")
        for _ in range(40):  # a second's worth of sending between them
            (await la.acquire()).release()
            (await lb.acquire()).release()
        assert lb.rate == pytest.approx(99.5)
        la.on_throttled()
        (await la.acquire()).release()
        state = await a.redis.hgetall(la._keys[1])
        w_max, t_thr = float(state[b"w_max"]), int(state[b"t_thr"])
        assert 30 <= w_max <= 100  # the fleet's measured rate, not the configured one
        (await lb.acquire()).release()
        assert lb.rate < 0.8 * 99.5  # B never saw a throttle, and slows down
        # Both throttled again at once: the fleet drops once per cooldown, not per process.
        la.on_throttled()
        lb.on_throttled()
        (await la.acquire()).release()
        (await lb.acquire()).release()
        state = await a.redis.hgetall(la._keys[1])
        assert int(state[b"t_thr"]) == t_thr
        # And after the cooldown a new throttle lowers it again.
        await asyncio.sleep(0.6)
        la.on_throttled()
        (await la.acquire()).release()
        state = await a.redis.hgetall(la._keys[1])
        assert int(state[b"t_thr"]) > t_thr


async def test_waits_for_redis_then_resumes(redis_factory: RedisFactory) -> None:
    server = redis_factory()
    events: list[QuotaBackendEvent] = []
    reg = RedisLimiterRegistry(server.url, rate=50, max_backoff=0.3, on_wait=events.append)
    async with reg:
        limiter = reg.get(account=SECRET_ID, region="r", action="a")
        (await limiter.acquire()).release()
        server.stop()
        task = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(3.0)
        assert not task.done()  # no permit without Redis, and no local fallback
        assert events
        assert events[0].waiting
        assert "unreachable" in str(events[0])
        server.start()
        permit = await asyncio.wait_for(task, 10)
        permit.release()
        # And at full speed at once: no silent stall on a stale pooled connection, no clock
        # offset measured across the outage (both once cost seconds per permit here).
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for _ in range(60):  # past slot n + 1, whose guard is the first slot after the outage
            (await limiter.acquire()).release()
        assert loop.time() - t0 < 2.5  # 1.2 s at 50/s
    assert not events[-1].waiting
    assert "is back" in str(events[-1])


async def test_max_wait_turns_a_long_outage_into_an_error(redis_factory: RedisFactory) -> None:
    server = redis_factory()
    async with RedisLimiterRegistry(server.url, max_backoff=0.1, max_wait=0.5) as reg:
        limiter = reg.get(account=SECRET_ID, region="r", action="a")
        server.stop()
        with pytest.raises(QuotaBackendError, match="unreachable") as info:
            await limiter.acquire()
    assert info.value.__context__ is None


async def test_a_client_you_own_is_not_closed(redis_server: RedisServer) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    async with RedisLimiterRegistry(client, prefix=f"t{uuid.uuid4().hex[:8]}") as reg:
        await reg.check()
        assert "127.0.0.1" in reg.url
    assert await client.ping()
    await client.aclose()

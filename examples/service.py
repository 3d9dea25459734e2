"""A small aiohttp service on tcvpc: one shared ``VpcClient`` for the app's whole life.

    TENCENTCLOUD_SECRET_ID=... TENCENTCLOUD_SECRET_KEY=... \\
        python examples/service.py --region ap-guangzhou [--endpoint URL] [--loop uvloop]

Routes:

* ``DELETE /tunnels/{gateway}/{tunnel}``: 200 with the outcome; 503 when the client sheds the
  call (``max_waiting``), 504 when its deadline passes, 502 for any other API failure, 400 for
  IDs the client refuses. Every error body names the tcvpc exception.
* ``GET /metrics``: Prometheus text format, from ``client.metrics()`` and an ``on_call`` hook.
* ``GET /health``: 200 ``ok``; it never touches the API.

The client is made inside the serving loop (``cleanup_ctx``) and closed there on SIGTERM/SIGINT.
It prints ``listening on http://HOST:PORT`` once ready (``--port 0`` picks a free port).
"""

from __future__ import annotations

import asyncio
import bisect
import signal
from collections import defaultdict
from collections.abc import AsyncIterator

import click
from aiohttp import web

from tcvpc import (
    CallEvent,
    DeadlineExceededError,
    QueueFullError,
    TcvpcError,
    VpcClient,
)

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class LatencyHistogram:
    """Per-(action, outcome) latency histogram fed by the client's ``on_call`` hook."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * len(BUCKETS))
        self.sums: dict[tuple[str, str], float] = defaultdict(float)
        self.totals: dict[tuple[str, str], int] = defaultdict(int)

    def observe(self, event: CallEvent) -> None:
        key = (event.action, event.outcome)
        buckets = self.counts[key]
        for i in range(bisect.bisect_left(BUCKETS, event.latency), len(BUCKETS)):
            buckets[i] += 1  # cumulative, as Prometheus wants them
        self.sums[key] += event.latency
        self.totals[key] += 1


CLIENT = web.AppKey("client", VpcClient)
LATENCY = web.AppKey("latency", LatencyHistogram)
DEADLINE = web.AppKey("deadline", float)


def _error(status: int, exc: BaseException, **extra: object) -> web.Response:
    body: dict[str, object] = {"error": type(exc).__name__, "message": str(exc), **extra}
    code = getattr(exc, "code", None)
    if code is not None:
        body["code"] = code
    return web.json_response(body, status=status)


async def delete_tunnel(request: web.Request) -> web.Response:
    client = request.app[CLIENT]
    try:
        result = await client.delete_vpn_connection(
            vpn_gateway_id=request.match_info["gateway"],
            vpn_connection_id=request.match_info["tunnel"],
            missing_ok=True,
            deadline=request.app[DEADLINE],
        )
    except ValueError as exc:
        return _error(400, exc)
    except QueueFullError as exc:
        response = _error(503, exc)
        response.headers["Retry-After"] = "1"
        return response
    except DeadlineExceededError as exc:
        return _error(504, exc, outcome_unknown=exc.outcome_unknown)
    except TcvpcError as exc:
        return _error(502, exc, outcome_unknown=exc.outcome_unknown or exc.after_unknown_outcome)
    return web.json_response(
        {
            "tunnel": str(result.tunnel),
            "outcome": result.outcome.value,
            "inferred": result.inferred,
            "request_id": result.request_id,
            "attempts": result.attempts,
        }
    )


def _labels(**labels: str) -> str:
    def escape(value: str) -> str:  # the exposition format's three escapes
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in labels.items()) + "}"


def render_metrics(client: VpcClient, latency: LatencyHistogram) -> str:
    """The client's telemetry in Prometheus text exposition format (version 0.0.4)."""
    m = client.metrics()
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")

    family("tcvpc_calls_total", "counter", "Calls ended, by action and outcome.")
    for (action, outcome), n in sorted(m.calls.items()):
        lines.append(f"tcvpc_calls_total{_labels(action=action, outcome=outcome)} {n}")
    family("tcvpc_call_latency_seconds", "histogram", "Call latency, limiter wait included.")
    for (action, result), counts in sorted(latency.counts.items()):
        for bound, n in zip(BUCKETS, counts, strict=True):
            labels = _labels(action=action, outcome=result, le=str(bound))
            lines.append(f"tcvpc_call_latency_seconds_bucket{labels} {n}")
        total = latency.totals[action, result]
        inf = _labels(action=action, outcome=result, le="+Inf")
        lines.append(f"tcvpc_call_latency_seconds_bucket{inf} {total}")
        key = _labels(action=action, outcome=result)
        lines.append(f"tcvpc_call_latency_seconds_sum{key} {latency.sums[action, result]:.6f}")
        lines.append(f"tcvpc_call_latency_seconds_count{key} {total}")
    family("tcvpc_limiter_wait_seconds_total", "counter", "Time calls spent waiting for a permit.")
    for action, seconds in sorted(m.queue_wait_seconds.items()):
        lines.append(f"tcvpc_limiter_wait_seconds_total{_labels(action=action)} {seconds:.6f}")
    family("tcvpc_limiter_rate", "gauge", "Current adaptive rate, requests per second.")
    for action, rate in sorted(m.rates.items()):
        lines.append(f"tcvpc_limiter_rate{_labels(action=action)} {rate:.3f}")
    for name, kind, value, help_text in (
        ("tcvpc_waiting_calls", "gauge", m.waiting, "Calls waiting for the limiter (queue)."),
        ("tcvpc_in_flight_calls", "gauge", m.in_flight, "Calls running now."),
        ("tcvpc_requests_sent_total", "counter", m.requests_sent, "Requests handed to the net."),
        (
            "tcvpc_requests_cancelled_total",
            "counter",
            m.requests_cancelled,
            "Requests abandoned before their answer (outcome unknown).",
        ),
        ("tcvpc_retries_total", "counter", m.retries, "Retries made."),
        ("tcvpc_shed_total", "counter", m.shed, "Calls refused by max_waiting."),
        (
            "tcvpc_retry_budget_available",
            "gauge",
            m.retry_budget_available,
            "Tokens left in the retry budget.",
        ),
    ):
        family(name, kind, help_text)
        lines.append(f"{name} {value}")
    return "\n".join(lines) + "\n"


async def metrics(request: web.Request) -> web.Response:
    text = render_metrics(request.app[CLIENT], request.app[LATENCY])
    return web.Response(text=text, content_type="text/plain", charset="utf-8")


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def make_app(
    *, region: str, endpoint: str | None, deadline: float, max_waiting: int | None
) -> web.Application:
    app = web.Application()
    app[DEADLINE] = deadline
    app[LATENCY] = LatencyHistogram()

    async def client_context(app: web.Application) -> AsyncIterator[None]:
        # Made here, inside the serving loop, once for the app's life: one connection pool and
        # one rate budget for every request the service handles.
        async with VpcClient(
            region=region,
            endpoint=endpoint,
            max_waiting=max_waiting,
            on_call=app[LATENCY].observe,
        ) as client:
            app[CLIENT] = client
            yield

    app.cleanup_ctx.append(client_context)
    app.router.add_delete("/tunnels/{gateway}/{tunnel}", delete_tunnel)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", health)
    return app


async def serve(app: web.Application, host: str, port: int) -> None:
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0]
        print(f"listening on http://{bound[0]}:{bound[1]}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()  # waits for running handlers, then closes the client


@click.command()
@click.option("--region", envvar="TENCENTCLOUD_REGION", required=True)
@click.option("--endpoint", default=None, help="API endpoint (an emulator URL for tests).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--deadline", default=10.0, show_default=True, type=click.FloatRange(min=0.01))
@click.option("--max-waiting", default=1000, show_default=True, type=click.IntRange(min=1))
@click.option("--loop", "loop_kind", type=click.Choice(["asyncio", "uvloop"]), default="asyncio")
def main(
    region: str,
    endpoint: str | None,
    host: str,
    port: int,
    deadline: float,
    max_waiting: int,
    loop_kind: str,
) -> None:
    app = make_app(region=region, endpoint=endpoint, deadline=deadline, max_waiting=max_waiting)
    if loop_kind == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve(app, host, port))
    else:
        asyncio.run(serve(app, host, port))


if __name__ == "__main__":
    main()

"""A tiny API stand-in run as a separate process: it records when each POST arrived.

test_ratelimit.py runs it so that arrival times are taken by a process the client's event loop
cannot delay. It prints its port on the first line and serves until its stdin closes;
``GET /arrivals`` returns the arrival times (``time.monotonic``, shared by all processes).
"""

from __future__ import annotations

import asyncio
import sys
import time

from aiohttp import web


async def serve() -> None:
    arrivals: list[float] = []

    async def handle(request: web.Request) -> web.Response:
        arrivals.append(time.monotonic())
        await request.read()
        return web.json_response({"Response": {"RequestId": "r"}})

    async def report(request: web.Request) -> web.Response:
        return web.json_response(arrivals)

    app = web.Application()
    app.router.add_post("/", handle)
    app.router.add_get("/arrivals", report)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.to_thread(sys.stdin.read)  # the test closes our stdin to stop us
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(serve())

"""``tcvpc emulator``: serve the emulator in this process until SIGINT or SIGTERM.

The base URL is the first line on stdout (with ``--tls``, the CA file's path is the second),
flushed at once so a script can read where to point its client; everything else goes to stderr.
It binds to loopback unless ``--allow-remote`` is given: a demo key on a public interface is an
open door.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from tcvpc.emulator.codes import INJECTABLE
from tcvpc.emulator.config import (
    DEMO_SECRET_ID,
    DEMO_SECRET_KEY,
    REGIONS,
    EmulatorConfig,
    FaultConfig,
)
from tcvpc.emulator.server import TLS_MISSING, Emulator, is_loopback

__all__ = ["emulator_command", "parse_injections", "resolve_credentials"]


def parse_injections(values: Sequence[str]) -> dict[str, float]:
    """``CODE=P`` strings as ``{code: probability}``; ``click.BadParameter`` names a bad one."""
    out: dict[str, float] = {}
    for value in values:
        code, sep, text = value.partition("=")
        code = code.strip()
        if not sep or not code:
            raise click.BadParameter(f"{value!r} is not CODE=P", param_hint="--inject")
        if code not in INJECTABLE:
            raise click.BadParameter(
                f"{code!r} is not injectable; choose from: {', '.join(sorted(INJECTABLE))}",
                param_hint="--inject",
            )
        try:
            probability = float(text)
        except ValueError:
            probability = math.nan
        if not 0.0 <= probability <= 1.0:
            raise click.BadParameter(
                f"{value!r}: P must be a probability between 0 and 1", param_hint="--inject"
            )
        if code in out:
            raise click.BadParameter(f"{code} is given twice", param_hint="--inject")
        out[code] = probability
    return out


def _inject_callback(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, float]:
    return parse_injections(values)


def resolve_credentials(secret_id: str | None, secret_key: str | None) -> tuple[str, str, str]:
    """Flags, else ``TENCENTCLOUD_SECRET_ID/KEY``, else the demo pair; plus where they came from."""
    if secret_id or secret_key:
        if not (secret_id and secret_key):
            raise click.UsageError("--secret-id and --secret-key go together")
        return secret_id, secret_key, "flags"
    env_id = os.environ.get("TENCENTCLOUD_SECRET_ID")
    env_key = os.environ.get("TENCENTCLOUD_SECRET_KEY")
    if env_id and env_key:
        return env_id, env_key, "environment"
    return DEMO_SECRET_ID, DEMO_SECRET_KEY, "demo pair"


async def _serve(config: EmulatorConfig, source: str) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with Emulator(config) as emulator:
            sys.stdout.write(emulator.url + "\n")
            if config.tls:
                sys.stdout.write(f"{emulator.ca_path}\n")
            sys.stdout.flush()
            if config.tls:
                click.echo(
                    f"tcvpc emulator: HTTPS; trust the run's CA with "
                    f"SSL_CERT_FILE={emulator.ca_path} (removed at exit)",
                    err=True,
                )
            counts = emulator.state.counts()
            if config.metadata:
                click.echo(
                    f"tcvpc emulator: CVM metadata endpoint {emulator.metadata_url} (role "
                    f"{config.metadata_role}; export TCVPC_METADATA_URL={emulator.metadata_url})",
                    err=True,
                )
            click.echo(
                f"tcvpc emulator: {counts['total']} tunnels, secret id {config.secret_id} "
                f"({source}), rate limit {config.rate_limit}/s per action, "
                f"delete {config.delete_seconds:g} s, mutex {config.effective_mutex_seconds:g} s, "
                f"faults {config.faults.total:g}, injected codes {len(config.inject)}"
                + (f", stranger {config.stranger_rate:g}/s" if config.stranger_rate else "")
                + ". Stop with Ctrl-C.",
                err=True,
            )
            await stop.wait()
            click.echo("tcvpc emulator: stopping", err=True)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


@click.command("emulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    default=0,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to bind; 0 picks a free one.",
)
@click.option("--allow-remote", is_flag=True, help="Allow a --host that is not loopback.")
@click.option(
    "--gateways", default=4, show_default=True, type=click.IntRange(min=0), help="Gateways to seed."
)
@click.option(
    "--tunnels-per-gateway",
    default=25,
    show_default=True,
    type=click.IntRange(min=0),
    help="Tunnels to seed on each gateway.",
)
@click.option(
    "--seed-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV (VpnGatewayId,VpnConnectionId[,VpcId,VpnConnectionName,State]) or "
    "JSON lines; replaces --gateways/--tunnels-per-gateway.",
)
@click.option("--secret-id", help="Accepted SecretId [env TENCENTCLOUD_SECRET_ID, else demo].")
@click.option("--secret-key", help="Accepted SecretKey [env TENCENTCLOUD_SECRET_KEY, else demo].")
@click.option(
    "--region",
    "regions",
    multiple=True,
    help="Accepted region (repeatable). Default: every public region.",
)
@click.option(
    "--rate-limit",
    default=100.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Requests per sliding second per (secret id, region, action); 0 disables.",
)
@click.option(
    "--delete-seconds",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="How long a deleted tunnel stays DELETING.",
)
@click.option(
    "--mutex-seconds",
    type=click.FloatRange(min=0),
    help="How long a gateway's mutex is held after a delete [default: --delete-seconds].",
)
@click.option(
    "--fault-rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Probability of a fault per request, spread over every fault kind.",
)
@click.option(
    "--stall-seconds",
    default=20.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Delay of a stalled answer.",
)
@click.option(
    "--clock-skew",
    "clock_skew",
    default=0.0,
    show_default=True,
    type=float,
    help="Seconds the server clock runs ahead (negative: behind).",
)
@click.option(
    "--inject",
    "inject",
    multiple=True,
    metavar="CODE=P",
    callback=_inject_callback,
    help="Answer a documented error CODE with probability P to requests of the actions it "
    "belongs to (repeatable), e.g. LimitExceeded.ActionLimited=0.1.",
)
@click.option(
    "--tls",
    is_flag=True,
    help="Serve HTTPS with a throwaway CA made for this run; its PEM file's path is the "
    "second line on stdout (needs trustme).",
)
@click.option(
    "--metadata",
    is_flag=True,
    help="Also serve a CVM metadata endpoint at /latest/meta-data/ (temporary keys of a role).",
)
@click.option(
    "--token-seconds",
    default=7200.0,
    show_default=True,
    type=click.FloatRange(1, 43200),
    help="Longest lifetime of the temporary keys it issues (STS, metadata).",
)
@click.option(
    "--stranger-rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Requests/s of each budget another program spends (the server admits us the rest).",
)
@click.option(
    "--stranger-seconds",
    type=click.FloatRange(min=0, min_open=True),
    help="Stop the stranger this many seconds after start [default: never].",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=int,
    help="Seed for tunnel IDs and faults (same seed, same run).",
)
def emulator_command(
    host: str,
    port: int,
    allow_remote: bool,
    gateways: int,
    tunnels_per_gateway: int,
    seed_file: Path | None,
    secret_id: str | None,
    secret_key: str | None,
    regions: tuple[str, ...],
    rate_limit: float,
    delete_seconds: float,
    mutex_seconds: float | None,
    fault_rate: float,
    stall_seconds: float,
    clock_skew: float,
    inject: dict[str, float],
    tls: bool,
    metadata: bool,
    token_seconds: float,
    stranger_rate: float,
    stranger_seconds: float | None,
    seed: int,
) -> None:
    """Run a local emulator of the Tencent Cloud VPC API.

    Prints the base URL (http://127.0.0.1:PORT) as the first line on stdout (with --tls, the CA
    file's path as the second), then serves until interrupted.
    """
    if not allow_remote and not is_loopback(host):
        raise click.UsageError(
            f"--host {host} is not a loopback address; add --allow-remote to expose the emulator"
        )
    sid, skey, source = resolve_credentials(secret_id, secret_key)
    if tls:
        try:
            import trustme  # noqa: F401 - only checking that it is installed
        except ImportError:
            raise click.UsageError(f"--tls: {TLS_MISSING}") from None
    try:
        config = EmulatorConfig(
            host=host,
            port=port,
            gateways=gateways,
            tunnels_per_gateway=tunnels_per_gateway,
            seed_file=seed_file,
            secret_id=sid,
            secret_key=skey,
            regions=regions or REGIONS,
            rate_limit=rate_limit or None,
            delete_seconds=delete_seconds,
            mutex_seconds=mutex_seconds,
            faults=FaultConfig.spread(fault_rate),
            seed=seed,
            stall_seconds=stall_seconds,
            clock_skew_seconds=clock_skew,
            inject=inject,
            tls=tls,
            token_seconds=token_seconds,
            metadata=metadata,
            stranger_rate=stranger_rate,
            stranger_seconds=stranger_seconds,
        )
    except (TypeError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    try:
        asyncio.run(_serve(config, source))
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None

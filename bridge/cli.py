"""The `muc-bridge` command: run, check-config, health, demo."""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys

import uvloop

from bridge import __version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="muc-bridge", description=__doc__)
    parser.add_argument("--version", action="version", version=f"muc-bridge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the bridge")
    run.add_argument("--config", "-c", required=True, help="path to the YAML config")
    check = sub.add_parser("check-config", help="validate a config and exit")
    check.add_argument("--config", "-c", required=True)
    health = sub.add_parser("health", help="ask the running bridge's /health (metrics.listen in the "
                            "config): exit 0 if ready, 1 if not (a container health check)")
    health.add_argument("--config", "-c", required=True)
    demo = sub.add_parser("demo", help="run against local Prosody and InspIRCd started for you")
    demo.add_argument("--install", action="store_true",
                      help="apt-get install the servers first if missing (as root)")
    args = parser.parse_args(argv)

    if args.command == "demo":
        from bridge.demo.run import run_demo
        return _run_async(run_demo(install=args.install))
    if args.command == "health":
        return _health(args.config)
    return _check(args.config) if args.command == "check-config" else _run(args.config)


def _load(path: str):
    from bridge.config import ConfigError, load_config, warnings_for
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"{path}: {len(exc.problems)} problem(s) in the configuration:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {path}:{problem}", file=sys.stderr)
        return None, []
    return config, warnings_for(config)


def _check(path: str) -> int:
    config, warnings = _load(path)
    if config is None:
        return 2
    # Warnings are printed, not fatal: `run` starts with them (and logs them) too.
    for problem in warnings:
        print(f"  {path}:{problem}", file=sys.stderr)
    endpoints = sum(len(link.endpoints) for link in config.links)
    noted = f", {len(warnings)} warning(s) above" if warnings else ""
    portal = f", portal to {', '.join(config.portal.networks)}" if config.portal.networks else ""
    print(f"{path}: ok ({len(config.networks)} networks, {len(config.links)} links, "
          f"{endpoints} endpoints{portal}){noted}")
    return 0


def _health(path: str) -> int:
    """Only `metrics.listen` is read: every 30 s, a full check (a PostgreSQL store is
    connected to) would be too much. Without it there is nothing to ask: exit 0, saying so."""
    from bridge.ops.http import probe
    try:
        listen = _yaml_value(path, "metrics", "listen")
    except (OSError, ValueError) as exc:
        print(f"muc-bridge health: {path}: {exc}", file=sys.stderr)
        return 1
    if listen is None:
        print(f"muc-bridge health: no metrics.listen in {path}: nothing to ask, not checked")
        return 0
    status, text = probe(listen)
    print(f"muc-bridge health: {status} {text.strip()}")
    return 0 if status == 200 else 1


def _yaml_value(path: str, *keys: str) -> str | None:
    """The string at `keys` in the YAML file `path` (`${VAR}` expanded), or None."""
    import os
    import yaml
    with open(path, encoding="utf-8") as f:
        try:
            node = yaml.safe_load(f)
        except yaml.YAMLError as exc:
            raise ValueError(f"not valid YAML ({str(exc).splitlines()[0]})") from None
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return os.path.expandvars(node) if isinstance(node, str) else None


def _run(path: str) -> int:
    config, warnings = _load(path)
    if config is None:
        return 2
    from bridge.app import Bridge
    from bridge.log import setup_logging
    from bridge.store.base import StoreUnavailable
    import structlog
    setup_logging(config.log.level, config.log.format)
    for problem in warnings:
        structlog.get_logger("bridge.config").warning("config_warning", path=problem.path,
                                                      line=problem.line, problem=problem.message)
    if config.store.standby:  # stands by until it leads: `bridge.standby`
        from bridge.standby import run_standby
        return _run_async(run_standby(config, path))
    try:
        bridge = Bridge(config, path)
    except StoreUnavailable as exc:
        print(f"muc-bridge: {exc}", file=sys.stderr)
        return 1
    # What exists now (modules, config, adapters) lives as long as the process: frozen
    # out of the collector's sight, a full collection no longer walks it (it took
    # ~40 ms, a stall every relayed message in that moment waited out).
    gc.collect()
    gc.freeze()
    return _run_async(bridge.run())


def _run_async(coro) -> int:
    """Run on uvloop's event loop (libuv): it wakes a connection for its data in a fraction
    of what asyncio's own loop takes in Python, which is most of a lone message's way
    through the bridge (docs/performance.md, session 8)."""
    from bridge.xmpp.component import HandshakeRefused
    result: object = 0
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            result = runner.run(coro)
    except* HandshakeRefused as group:
        print(f"muc-bridge: {_leaves(group)[0]}", file=sys.stderr)
        result = 1
    except* (KeyboardInterrupt, asyncio.CancelledError):
        pass
    return result if isinstance(result, int) else 0


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    return [leaf for exc in group.exceptions
            for leaf in (_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])]

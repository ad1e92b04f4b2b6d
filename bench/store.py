"""Store start-up with many identities: `python -m bench.store [--identities N]`.

Fills a SQLite store with N puppets (as a bridge that has seen N people would have them),
then, in a fresh process each time, opens it and measures the time to open, the RSS the
process grew by, and the time of a first and a cached lookup by key and by local part.
Before puppets were read on demand, opening read every one into two dicts.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bridge.core.events import Identity
from bridge.store.sqlite import SqliteStore, escape_localpart, fold_localpart


def fill(path: str, count: int) -> float:
    """N puppets written straight into a new store; seconds taken."""
    started = time.perf_counter()
    store = SqliteStore(path)
    now = time.time()
    rows = ((f"net{n % 4}", f"account-{n}", f"{escape_localpart(f'user{n}')}%net{n % 4}",
             f"user{n}", fold_localpart(f"user{n}%net{n % 4}"), now) for n in range(count))
    store.db.execute("BEGIN")
    store.db.executemany("INSERT INTO puppets (network, native_id, localpart, nick, folded, seen) "
                         "VALUES (?, ?, ?, ?, ?, ?)", rows)
    store.db.execute("COMMIT")
    store.close()
    return time.perf_counter() - started


def probe(path: str, count: int) -> dict:
    """In this process: open the store and look people up."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    store = SqliteStore(path)
    opened = time.perf_counter() - started
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss
    n = count // 2
    who = Identity(f"net{n % 4}", f"account-{n}", f"user{n}")
    timings = {}
    for name, call in (("by key", lambda: store.puppet(who)),
                       ("by local part", lambda: store.identity_for_localpart(f"user{n}%net{n % 4}"))):
        first = time.perf_counter()
        call()
        second = time.perf_counter()
        call()
        timings[name] = ((second - first) * 1e6, (time.perf_counter() - second) * 1e6)
    return {"open_ms": opened * 1e3, "rss_kib": grown, "lookups_us": timings,
            "count": store.puppet_count()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.store", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--identities", type=int, default=1_000_000)
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:
        print(json.dumps(probe(args.probe, args.identities)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "bridge.db")
        filled = fill(path, args.identities)
        print(f"store with {args.identities:,} puppets written in {filled:.1f} s "
              f"({Path(path).stat().st_size / 2**20:.0f} MiB)")
        for run in range(3):
            out = subprocess.run([sys.executable, "-m", "bench.store", "--identities",
                                  str(args.identities), "--probe", path],
                                 capture_output=True, text=True, check=True).stdout
            got = json.loads(out.strip().splitlines()[-1])
            looks = ", ".join(f"{name} {first:.0f} us then {again:.1f} us"
                              for name, (first, again) in got["lookups_us"].items())
            print(f"run {run + 1}: opened in {got['open_ms']:.1f} ms, RSS +{got['rss_kib'] / 1024:.1f} MiB "
                  f"({got['count']:,} puppets on disk); first lookup {looks}")


if __name__ == "__main__":
    main()

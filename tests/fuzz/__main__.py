"""python -m tests.fuzz run [TARGET ...] [--count N|full] [--seconds S] [--seed K]
python -m tests.fuzz replay [FILE ...]
python -m tests.fuzz list"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tests.fuzz.engine import fuzz, regression_cases, replay
from tests.fuzz.logs import quiet
from tests.fuzz.targets import TARGETS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="fuzz targets")
    run.add_argument("targets", nargs="*", help="default: all")
    run.add_argument("--count", default="10000", help="inputs per target, or 'full' for each target's full count")
    run.add_argument("--seconds", type=float, default=0.0, help="time limit per target (0: none)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--no-save", action="store_true", help="do not keep crashing inputs")
    replay = sub.add_parser("replay", help="run saved inputs again")
    replay.add_argument("files", nargs="*", help="default: every saved regression case")
    sub.add_parser("list", help="the targets")
    args = parser.parse_args(argv)

    if args.command == "list":
        for target in TARGETS.values():
            print(f"{target.name:<16} full {target.full:>9,}  bound {target.bound * 1e3:,.0f} ms  {target.doc}")
        return 0
    if args.command == "replay":
        return _replay([Path(f) for f in args.files] or regression_cases())
    names = args.targets or list(TARGETS)
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        parser.error(f"unknown targets: {', '.join(unknown)} (python -m tests.fuzz list)")
    failed = False
    with quiet():
        for name in names:
            target = TARGETS[name]
            count = target.full if args.count == "full" else int(args.count)
            print(f"{name}: up to {count:,} inputs" + (f" or {args.seconds:g} s" if args.seconds else ""),
                  flush=True)
            report = fuzz(target, count, args.seconds or None, args.seed, save=not args.no_save,
                          log=lambda line: print(line, flush=True))
            print(report.line(), flush=True)
            for path in report.saved:
                print(f"  saved {path}", flush=True)
            failed |= bool(report.crash_count or report.hangs)
    return 1 if failed else 0


def _replay(files: list[Path]) -> int:
    failed = 0
    with quiet():
        for path in files:
            target = TARGETS[path.parent.name]
            elapsed, error = replay(target, path.read_bytes())
            slow = elapsed > target.bound
            status = f"{type(error).__name__}: {error}" if error else ("slow" if slow else "ok")
            print(f"{path}: {status} ({elapsed * 1e3:,.2f} ms)")
            failed += bool(error) or slow
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

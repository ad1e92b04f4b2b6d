"""Printing results: one JSON line and a small table per scenario run, then medians,
muc-bridge / biboumi ratios, the issue's targets, and the block in docs/performance.md."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
from pathlib import Path

from bench.gateways import REPO

#: Result fields shown in tables, in this order, with their headings.
COLUMNS = (
    ("msg_per_s", "msg/s"), ("elapsed_s", "elapsed s"), ("p50_ms", "p50 ms"), ("p95_ms", "p95 ms"), ("p99_ms", "p99 ms"),
    ("lost", "lost"), ("duplicates", "dup"), ("cpu_s_per_1k", "CPU s/1k"),
    ("all_arrived_s", "all in s"), ("irc_floor_s", "IRC floor s"), ("presences", "presences"),
    ("rss_per_puppet_kib", "KiB/puppet"), ("gateway_cpu_s", "CPU s"), ("rss_kib", "RSS KiB"),
    ("cpu_prosody_s", "Prosody CPU s"), ("cpu_silc_s", "SILC server CPU s"),
)
BASELINES = ("biboumi", "biboumi-nohist")
#: Our gateways compared with the baselines: relaying through a linked MUC room, and
#: serving the IRC channel itself (portal mode, as biboumi does).
OURS = ("muc-bridge", "muc-bridge-portal")
RATIO_FIELDS = (("msg_per_s", "throughput"), ("p50_ms", "p50"), ("p99_ms", "p99"),
                ("cpu_s_per_1k", "CPU/1k"))
DOC_START = "<!-- bench:results:start (written by python -m bench.run) -->"
DOC_END = "<!-- bench:results:end -->"


def key(row: dict) -> tuple[str, str]:
    scenario = row["scenario"] + (f" K={row['k']}" if "k" in row else "")
    return row["gateway"], scenario


def print_row(row: dict) -> None:
    print(json.dumps(row, sort_keys=False), flush=True)
    gateway, scenario = key(row)
    cells = [(head, row[field]) for field, head in COLUMNS if row.get(field) is not None]
    print(f"  {gateway:15} {scenario:20} " + "  ".join(f"{h}={v}" for h, v in cells), flush=True)


def medians(rows: list[dict]) -> dict[tuple[str, str], dict]:
    """Per (gateway, scenario): the median of every numeric field over the repeats."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    out = {}
    for k, group in groups.items():
        merged: dict = {"runs": len(group)}
        for field in group[0]:
            values = [r[field] for r in group if isinstance(r.get(field), (int, float))
                      and not isinstance(r.get(field), bool)]
            if values and len(values) == len(group):
                merged[field] = round(statistics.median(values), 4)
        if any(r.get("lost") for r in group):  # a loss in any run must show
            merged["lost_max"] = max(r.get("lost") or 0 for r in group)
        out[k] = merged
    return out


def ratios(table: dict[tuple[str, str], dict]) -> list[tuple[str, str, str, str, float | None]]:
    """ours / baseline for each of our gateways, shared scenario and ratio field."""
    out = []
    for (gateway, scenario), row in sorted(table.items()):
        if gateway not in BASELINES:
            continue
        for us in OURS:
            ours = table.get((us, scenario))
            if ours is None:
                continue
            for field, name in RATIO_FIELDS:
                a, b = ours.get(field), row.get(field)
                out.append((us, gateway, scenario, name,
                            round(a / b, 2) if isinstance(a, (int, float)) and b else None))
    return out


def against_floor(table: dict[tuple[str, str], dict]) -> list[tuple[str, str, str]]:
    """Figures relative to the no-gateway floor of the same run, which vary less between
    runs than the raw ones: burst throughput as a share of Prosody's XMPP-to-XMPP rate
    through one room, and paced p50 above the IRC hop plus the MUC hop."""
    floor = {sc: row for (gw, sc), row in table.items() if gw == "floor"}
    muc_rate = floor.get("xmpp_to_xmpp", {}).get("msg_per_s")
    hops = [floor.get(f"paced_{s}", {}).get("p50_ms") for s in ("irc_to_irc", "xmpp_to_xmpp")]
    out = []
    for (gateway, scenario), row in table.items():
        if gateway == "floor":
            continue
        if scenario in ("irc_to_xmpp", "xmpp_to_irc") and muc_rate and row.get("msg_per_s"):
            out.append((gateway, scenario,
                        f"{row['msg_per_s'] / muc_rate:.2f} x the MUC floor's msg/s"))
        if scenario.startswith("paced_") and None not in hops and row.get("p50_ms") is not None:
            out.append((gateway, scenario,
                        f"p50 {row['p50_ms'] - sum(hops):+.2f} ms over the two hops' floor"))
    return out


def targets(table: dict[tuple[str, str], dict]) -> list[tuple[str, str, bool | None, str]]:
    """The issue's first targets, each with the figure, whether it is met (None: not run)
    and what the servers alone did in the same run, for scale."""
    def get(gateway: str, scenario: str, field: str):
        return table.get((gateway, scenario), {}).get(field)

    def check(name: str, value, ok, floor=None) -> tuple[str, str, bool | None, str]:
        return (name, "not run" if value is None else str(value),
                None if value is None else bool(ok(value)), "–" if floor is None else str(floor))

    def beside(field: str, scenario: str):
        """The portal's figure, when biboumi without history ran beside it."""
        if get("biboumi-nohist", scenario, field) is None:
            return None
        return get("muc-bridge-portal", scenario, field)

    hops = [get("floor", f"paced_{s}", "p50_ms") for s in ("irc_to_irc", "xmpp_to_xmpp")]
    loss = [row.get("lost_max", row.get("lost", 0)) for (gw, _), row in table.items()
            if gw in OURS]
    k200 = table.get(("muc-bridge", "puppet_scale K=200"), {})
    k2000 = table.get(("muc-bridge", "puppet_scale K=2000"), {})
    return [
        *(check(f"{s} >= 5000 msg/s", get("muc-bridge", s, "msg_per_s"), lambda v: v >= 5000,
                get("floor", "xmpp_to_xmpp", "msg_per_s")) for s in ("irc_to_xmpp", "xmpp_to_irc")),
        *(check(f"{s} p50 <= 1.5 ms", get("muc-bridge", s, "p50_ms"), lambda v: v <= 1.5,
                None if None in hops else round(sum(hops), 3))
          for s in ("paced_irc_to_xmpp", "paced_xmpp_to_irc")),
        *(check(f"{s} p99 <= 3 ms", get("muc-bridge", s, "p99_ms"), lambda v: v <= 3,
                get("floor", "paced_xmpp_to_xmpp", "p99_ms"))
          for s in ("paced_irc_to_xmpp", "paced_xmpp_to_irc")),
        check("zero loss (every run)", sum(loss) if loss else None, lambda v: v == 0),
        check("puppet_scale K=200 <= 1.5 s", k200.get("all_arrived_s"), lambda v: v <= 1.5,
              k200.get("irc_floor_s")),
        *(check(f"portal {s} >= biboumi-nohist (last column)", beside("msg_per_s", s),
                lambda v, s=s: v >= get("biboumi-nohist", s, "msg_per_s"),
                get("biboumi-nohist", s, "msg_per_s")) for s in ("irc_to_xmpp", "xmpp_to_irc")),
        *(check(f"portal {s} p50 <= biboumi-nohist (last column)", beside("p50_ms", s),
                lambda v, s=s: v <= get("biboumi-nohist", s, "p50_ms"),
                get("biboumi-nohist", s, "p50_ms")) for s in ("paced_irc_to_xmpp", "paced_xmpp_to_irc")),
        check("puppet_scale K=2000 completes, no loss",
              f"{k2000['all_arrived_s']} s, {k2000.get('lost', 0)} lost" if k2000 else None,
              lambda v: k2000.get("lost", 0) == 0, k2000.get("irc_floor_s")),
    ]


def machine() -> dict:
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return {"cpus": os.cpu_count(), "cpu_model": model, "ram_gib": round(mem_kib / 2**20, 1),
            "kernel": platform.release()}


def versions() -> dict:
    def dpkg(package: str) -> str:
        try:
            return subprocess.run(["dpkg-query", "-W", "-f=${Version}", package],
                                  capture_output=True, text=True, timeout=10).stdout or "?"
        except (OSError, subprocess.SubprocessError):
            return "?"

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True,
                                  text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    rev = git("rev-parse", "--short", "HEAD") or "?"
    if git("status", "--porcelain", "--", "bridge"):
        rev += " (bridge/ modified)"
    return {"prosody": dpkg("prosody"), "inspircd": dpkg("inspircd"), "biboumi": dpkg("biboumi"),
            "python": platform.python_version(), "muc-bridge": rev}


def fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:g}"
    return str(value)


def markdown(table: dict[tuple[str, str], dict], header: dict, profiles: dict[str, dict]) -> str:
    """The generated block of docs/performance.md."""
    lines = [DOC_START, "",
             f"Command: `{header['command']}`  ",
             f"Date: {header['date']}  ",
             f"Machine: {header['machine']['cpus']} CPUs ({header['machine']['cpu_model']}), "
             f"{header['machine']['ram_gib']} GiB RAM, Linux {header['machine']['kernel']}  ",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in header["versions"].items()) + "  ",
             f"Prosody's garbage collector: {header['prosody_gc']} (`--prosody-gc`)", "",
             f"Figures are medians of {header['repeat']} runs (N={header['n']} for bursts).", "",
             *(f"**Failed:** {failure}  " for failure in header.get("failures", ())),
             *([""] if header.get("failures") else [])]
    shown = [(field, head) for field, head in COLUMNS
             if any(row.get(field) is not None for row in table.values())]
    lines.append("| gateway | scenario | " + " | ".join(h for _, h in shown) + " |")
    lines.append("|---|---|" + "---:|" * len(shown))
    for (gateway, scenario), row in table.items():
        lost = row.get("lost")
        if row.get("lost_max"):
            lost = f"{lost} (max {row['lost_max']})"
        cells = [fmt(lost if field == "lost" else row.get(field)) for field, _ in shown]
        lines.append(f"| {gateway} | {scenario} | " + " | ".join(cells) + " |")
    rat = ratios(table)
    if rat:
        lines += ["", "ours / biboumi (throughput: above 1 is better for us; latency "
                  "and CPU: below 1 is better for us):", "",
                  "| ours | baseline | scenario | " + " | ".join(n for _, n in RATIO_FIELDS) + " |",
                  "|---|---|---|" + "---:|" * len(RATIO_FIELDS)]
        grouped: dict[tuple[str, str, str], dict[str, float | None]] = {}
        for us, baseline, scenario, name, value in rat:
            grouped.setdefault((us, baseline, scenario), {})[name] = value
        for (us, baseline, scenario), values in grouped.items():
            lines.append(f"| {us} | {baseline} | {scenario} | "
                         + " | ".join(fmt(values.get(n)) for _, n in RATIO_FIELDS) + " |")
    relative = against_floor(table)
    if relative:
        lines += ["", "Against the floor of the same run (steadier than raw figures between runs):",
                  "", "| gateway | scenario | relative to the floor |", "|---|---|---|"]
        lines += [f"| {gw} | {sc} | {text} |" for gw, sc, text in relative]
    lines += ["", "Targets (issue 4, first step); the last column is what the servers alone did in",
              "this run (MUC floor msg/s; IRC hop + MUC hop p50; MUC hop p99; IRC floor s):", "",
              "| target | figure | met | servers alone |", "|---|---:|---|---:|"]
    for name, figure, ok, floor in targets(table):
        lines.append(f"| {name} | {figure} | {'–' if ok is None else ('yes' if ok else 'NO')} "
                     f"| {floor} |")
    for scenario, prof in profiles.items():
        lines += ["", f"py-spy, muc-bridge during {scenario} ({prof['samples']} samples; "
                  "share of samples):", "", "| self % | function | | total % | function |",
                  "|---:|---|---|---:|---|"]
        for (sf, sv), (tf, tv) in zip(prof["self"], prof["total"]):
            lines.append(f"| {sv} | `{sf}` | | {tv} | `{tf}` |")
    lines += ["", DOC_END]
    return "\n".join(lines)


def print_summary(table: dict[tuple[str, str], dict]) -> None:
    print("\nMedians:")
    for (gateway, scenario), row in table.items():
        cells = [(head, row[field]) for field, head in COLUMNS if row.get(field) is not None]
        print(f"  {gateway:15} {scenario:20} " + "  ".join(f"{h}={fmt(v)}" for h, v in cells))
    rat = ratios(table)
    if rat:
        print("\nours / baseline:")
        for us, baseline, scenario, name, value in rat:
            print(f"  {us:17} vs {baseline:15} {scenario:20} {name:10} {fmt(value)}")
    relative = against_floor(table)
    if relative:
        print("\nAgainst the floor of the same run:")
        for gateway, scenario, text in relative:
            print(f"  {gateway:15} {scenario:20} {text}")
    print("\nTargets:")
    for name, figure, ok, floor in targets(table):
        print(f"  {'–' if ok is None else ('met' if ok else 'MISSED'):7} {name}: {figure}"
              f"  (servers alone: {floor})")


def write_docs(path: Path, block: str) -> None:
    """Replace the generated block of `path` (or append one)."""
    text = path.read_text() if path.exists() else "# Performance\n"
    start, end = text.find(DOC_START), text.find(DOC_END)
    if start != -1 and end != -1:
        text = text[:start] + block + text[end + len(DOC_END):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)

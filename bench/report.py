#!/usr/bin/env python3
"""Helpers for bench/run: parse wrk's text output and render the results table.

    report.py parse WRK_OUTPUT_FILE
        prints one tab-separated line: req_per_s  p50_ms  p99_ms  errors  error_detail
        ("-" for a value wrk did not print; the exit status is 0 even then, so one broken run
        shows up in the table instead of aborting the whole benchmark)

    report.py table RESULTS_TSV [--md OUT] [--header TEXT] [--ttfb TTFB_TSV]
        RESULTS_TSV lines: target conc req_per_s p50_ms p99_ms errors error_detail cpu_pct rss_kb
        TTFB_TSV lines (bench/ttfb.py, one per target): target p50_ms p90_ms p99_ms count
        prints the markdown table and the summary lines against the targets of the issues;
        exits 0 (PASS or FAIL alike: the table is the result), 2 if a row could not be parsed.

Standard library only, so it runs on any python3.
"""

import re
import sys

# wrk prints durations with an adaptive unit (src/units.c): us, ms, s, m, h.
UNIT_TO_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
DURATION = re.compile(r"^([0-9]*\.?[0-9]+)(us|ms|s|m|h)$")

# Targets from the issue.
RPS_TARGET_PCT = 50.0  # Switchyard req/s at the highest concurrency >= 50% of nginx's
P50_TARGET_MS = 0.2  # Switchyard p50 - nginx p50 at concurrency 1 <= 0.2 ms
RSS_TARGET_MB = 30.0  # Switchyard peak RSS < 30 MB
TRANSLATION_CPU_TARGET_PCT = 20.0  # OpenAI->Anthropic translation CPU/request <= +20% of pass-through
BUDGET_RPS_TARGET_PCT = 90.0  # a budgeted key (spend logging on) >= 90% of the master key's req/s
OBSERVED_RPS_TARGET_PCT = 90.0  # metrics, traces and JSON logs on >= 90% of the row with them off
TTFB_TARGET_MS = 1.0  # streaming time to first byte through the gateway <= direct + 1 ms


def duration_ms(text):
    m = DURATION.match(text.strip())
    if not m:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(m.group(1)) * UNIT_TO_MS[m.group(2)]


def parse_wrk(text):
    """Return dict(rps, p50, p99, errors, detail) from wrk --latency output; None if missing."""
    out = {"rps": None, "p50": None, "p99": None, "errors": 0, "detail": []}
    in_dist = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("Requests/sec:"):
            out["rps"] = float(line.split(":", 1)[1].strip())
        elif line.startswith("Latency Distribution"):
            in_dist = True
        elif in_dist and re.match(r"^[0-9.]+%\s", line):
            pct, value = line.split()[:2]
            if pct in ("50%", "50.000%"):
                out["p50"] = duration_ms(value)
            elif pct in ("99%", "99.000%"):
                out["p99"] = duration_ms(value)
        elif in_dist and line and not re.match(r"^[0-9.]+%", line):
            in_dist = False
        if line.startswith("Non-2xx or 3xx responses:"):
            n = int(line.split(":", 1)[1].strip())
            out["errors"] += n
            out["detail"].append(f"non-2xx={n}")
        elif line.startswith("Socket errors:"):
            # "Socket errors: connect 0, read 1, write 0, timeout 0"
            for kind, n in re.findall(r"([a-z]+) ([0-9]+)", line.split(":", 1)[1]):
                if int(n):
                    out["errors"] += int(n)
                    out["detail"].append(f"{kind}={n}")
    return out


def fmt(value, digits=3):
    return "-" if value is None else f"{value:.{digits}f}"


def cmd_parse(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        r = parse_wrk(f.read())
    detail = ",".join(r["detail"]) or "-"
    if r["rps"] is None:
        detail = "no-wrk-output" if detail == "-" else detail + ",no-wrk-output"
    rps = "-" if r["rps"] is None else f"{r['rps']:.2f}"
    print("\t".join([rps, fmt(r["p50"]), fmt(r["p99"]), str(r["errors"]), detail]))


def num(text):
    return None if text in ("-", "") else float(text)


def read_ttfb(path):
    """target -> dict(p50, p90, p99, n) from bench/ttfb.py lines."""
    out = {}
    if not path:
        return out
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 5:
                continue
            target, p50, p90, p99, n = fields
            out[target] = {"p50": num(p50), "p90": num(p90), "p99": num(p99), "n": n}
    return out


def cmd_table(path, md_out=None, header="", ttfb_path=None):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 9:
                raise ValueError(f"{path}: row has {len(fields)} fields, expected 9: {line!r}")
            target, conc, rps, p50, p99, errors, detail, cpu, rss_kb = fields
            rows.append(
                {
                    "target": target,
                    "conc": int(conc),
                    "rps": num(rps),
                    "p50": num(p50),
                    "p99": num(p99),
                    "errors": int(errors),
                    "detail": detail,
                    "cpu": num(cpu),
                    "rss_mb": None if rss_kb == "-" else int(rss_kb) / 1024.0,
                }
            )

    lines = [
        "| target | conc | req/s | p50 ms | p99 ms | errors | target CPU % | CPU us/req "
        "| peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        errors = str(r["errors"])
        if r["rps"] is None:
            errors = f"**?** ({r['detail']})"
        elif r["errors"] or r["detail"] != "-":
            errors = f"**{r['errors']}** ({r['detail']})"
        rps = "-" if r["rps"] is None else f"{r['rps']:.0f}"
        # CPU time per request: the target's efficiency, which (unlike CPU %) holds up when
        # other work on the machine takes part of the target's core.
        per_req = None
        if r["cpu"] is not None and r["rps"]:
            per_req = r["cpu"] / 100.0 * 1e6 / r["rps"]
        lines.append(
            f"| {r['target']} | {r['conc']} | {rps} | {fmt(r['p50'])} | {fmt(r['p99'])} "
            f"| {errors} | {fmt(r['cpu'], 0)} | {fmt(per_req, 0)} | {fmt(r['rss_mb'], 1)} |"
        )

    def row(target, conc):
        for r in rows:
            if r["target"] == target and r["conc"] == conc:
                return r
        return None

    def verdict(ok):
        return "PASS" if ok else "FAIL"

    summary = []
    concs = sorted({r["conc"] for r in rows})
    # Throughput: compare at 32 if measured, else at the highest concurrency measured.
    hi = 32 if 32 in concs else (concs[-1] if concs else None)
    sy, ng = row("switchyard", hi), row("nginx", hi)
    if sy and ng and sy["rps"] and ng["rps"]:
        pct = 100.0 * sy["rps"] / ng["rps"]
        summary.append(
            f"- Throughput: switchyard req/s at c={hi} is {pct:.1f}% of nginx's "
            f"({sy['rps']:.0f} vs {ng['rps']:.0f}; target >= {RPS_TARGET_PCT:.0f}%): "
            f"{verdict(pct >= RPS_TARGET_PCT)}"
        )
    elif sy and ng:
        summary.append(f"- Throughput: FAIL - no req/s for switchyard or nginx at c={hi}")
    else:
        summary.append(f"- Throughput: n/a (needs switchyard and nginx rows at c={hi})")

    sy, ng = row("switchyard", 1), row("nginx", 1)
    if sy and ng and sy["p50"] is not None and ng["p50"] is not None:
        delta = sy["p50"] - ng["p50"]
        summary.append(
            f"- Added latency: switchyard p50 - nginx p50 at c=1 is {delta:+.3f} ms "
            f"(target <= {P50_TARGET_MS} ms): {verdict(delta <= P50_TARGET_MS)}"
        )
    elif sy and ng:
        summary.append("- Added latency: FAIL - no p50 for switchyard or nginx at c=1")
    else:
        summary.append("- Added latency: n/a (needs switchyard and nginx rows at c=1)")

    sy_rss = [r["rss_mb"] for r in rows if r["target"] == "switchyard" and r["rss_mb"]]
    if sy_rss:
        rss = max(sy_rss)
        summary.append(
            f"- Memory: switchyard peak RSS {rss:.1f} MB (target < {RSS_TARGET_MB:.0f} MB): "
            f"{verdict(rss < RSS_TARGET_MB)}"
        )
    elif any(r["target"] == "switchyard" for r in rows):
        summary.append("- Memory: FAIL - switchyard's peak RSS could not be read")
    else:
        summary.append("- Memory: n/a (no switchyard row)")

    # Translation (OpenAI -> Anthropic) against pass-through: CPU time per request of the same
    # gateway process, at the highest concurrency (where CPU, not waiting, dominates).
    def per_request(r):
        return r["cpu"] / 100.0 * 1e6 / r["rps"] if r and r["cpu"] is not None and r["rps"] else None

    sy, an = row("switchyard", hi), row("switchyard-anthropic", hi)
    if sy and an and per_request(sy) and per_request(an) is not None:
        extra = 100.0 * (per_request(an) / per_request(sy) - 1.0)
        summary.append(
            f"- Translation CPU: switchyard-anthropic {per_request(an):.0f} us/req vs switchyard "
            f"{per_request(sy):.0f} us/req at c={hi} ({extra:+.1f}%; target <= "
            f"+{TRANSLATION_CPU_TARGET_PCT:.0f}%): {verdict(extra <= TRANSLATION_CPU_TARGET_PCT)}"
        )
    elif an:
        summary.append(f"- Translation CPU: FAIL - no CPU figure for switchyard or switchyard-anthropic at c={hi}")

    # A budgeted virtual key (spend logging on, as by default) against the master key, on the
    # same gateway in the same run: req/s within BUDGET_RPS_TARGET_PCT, CPU per request shown.
    sy, bu = row("switchyard", hi), row("switchyard-budget", hi)
    if sy and bu and sy["rps"] and bu["rps"]:
        pct = 100.0 * bu["rps"] / sy["rps"]
        cpu = ""
        if per_request(sy) and per_request(bu) is not None:
            cpu = (
                f"; CPU {per_request(bu):.0f} vs {per_request(sy):.0f} us/req, "
                f"{100.0 * (per_request(bu) / per_request(sy) - 1.0):+.1f}%"
            )
        summary.append(
            f"- Budgeted key: switchyard-budget req/s at c={hi} is {pct:.1f}% of switchyard's "
            f"({bu['rps']:.0f} vs {sy['rps']:.0f}{cpu}; target >= {BUDGET_RPS_TARGET_PCT:.0f}%): "
            f"{verdict(pct >= BUDGET_RPS_TARGET_PCT)}"
        )
    elif bu:
        summary.append(f"- Budgeted key: FAIL - no req/s for switchyard or switchyard-budget at c={hi}")

    # Observability on (Prometheus with LiteLLM's names and a tag label, every request traced to
    # a local OTLP collector, a JSON access log line per request) against the same gateway with
    # them off, in the same run: req/s within OBSERVED_RPS_TARGET_PCT.
    sy, ob = row("switchyard", hi), row("switchyard-observed", hi)
    if sy and ob and sy["rps"] and ob["rps"]:
        pct = 100.0 * ob["rps"] / sy["rps"]
        cpu = ""
        if per_request(sy) and per_request(ob) is not None:
            cpu = (
                f"; CPU {per_request(ob):.0f} vs {per_request(sy):.0f} us/req, "
                f"{100.0 * (per_request(ob) / per_request(sy) - 1.0):+.1f}%"
            )
        summary.append(
            f"- Observability on: switchyard-observed req/s at c={hi} is {pct:.1f}% of switchyard's "
            f"({ob['rps']:.0f} vs {sy['rps']:.0f}{cpu}; target >= {OBSERVED_RPS_TARGET_PCT:.0f}%): "
            f"{verdict(pct >= OBSERVED_RPS_TARGET_PCT)}"
        )
    elif ob:
        summary.append(f"- Observability on: FAIL - no req/s for switchyard or switchyard-observed at c={hi}")

    # The response cache and the PII guardrail against the same request with them off, in the
    # same run: reported, not judged (issue 11 sets no target; the lead reads the numbers).
    for target, label in (
        ("switchyard-cache-miss", "Cache on, every request a miss"),
        ("switchyard-cache-hit", "Cache on, every request a hit"),
        ("switchyard-pii", "PII guardrail on"),
    ):
        sy, other = row("switchyard", hi), row(target, hi)
        if sy and other and sy["rps"] and other["rps"]:
            cpu = ""
            if per_request(sy) and per_request(other) is not None:
                cpu = (
                    f"; CPU {per_request(other):.0f} vs {per_request(sy):.0f} us/req, "
                    f"{100.0 * (per_request(other) / per_request(sy) - 1.0):+.1f}%"
                )
            summary.append(
                f"- {label}: {target} req/s at c={hi} is {100.0 * other['rps'] / sy['rps']:.1f}% of "
                f"switchyard's ({other['rps']:.0f} vs {sy['rps']:.0f}{cpu})"
            )
        elif other:
            summary.append(f"- {label}: n/a (needs switchyard and {target} rows at c={hi})")

    ttfb = read_ttfb(ttfb_path)
    if ttfb:
        lines.extend(
            [
                "",
                "| streaming TTFB | p50 ms | p90 ms | p99 ms | requests |",
                "|---|---:|---:|---:|---:|",
            ]
        )
        for target, t in ttfb.items():
            lines.append(
                f"| {target} | {fmt(t['p50'])} | {fmt(t['p90'])} | {fmt(t['p99'])} | {t['n']} |"
            )
        for through, direct in (("switchyard", "direct"), ("switchyard-anthropic", "direct-anthropic")):
            a, b = ttfb.get(through), ttfb.get(direct)
            if a and b and a["p50"] is not None and b["p50"] is not None:
                delta = a["p50"] - b["p50"]
                summary.append(
                    f"- Streaming TTFB: {through} p50 - {direct} p50 is {delta:+.3f} ms "
                    f"(target <= {TTFB_TARGET_MS} ms): {verdict(delta <= TTFB_TARGET_MS)}"
                )
            elif a or b:
                summary.append(f"- Streaming TTFB: FAIL - no p50 for {through} or {direct}")

    bad = [r for r in rows if r["errors"] or r["rps"] is None]
    if bad:
        where = ", ".join(f"{r['target']} c={r['conc']}" for r in bad)
        summary.append(f"- Errors: FAIL - runs with errors or no output: {where}")
    else:
        summary.append("- Errors: PASS - every run returned only 2xx responses")

    text = "\n".join(lines) + "\n\n" + "\n".join(summary) + "\n"
    print(text, end="")
    if md_out:
        with open(md_out, "w", encoding="utf-8") as f:
            if header:
                f.write(header.rstrip("\n") + "\n\n")
            f.write(text)
    return 0


def main(argv):
    if len(argv) >= 2 and argv[0] == "parse":
        cmd_parse(argv[1])
        return 0
    if len(argv) >= 2 and argv[0] == "table":
        md_out, header, ttfb_path, rest = None, "", None, argv[2:]
        while rest:
            if rest[0] == "--md" and len(rest) > 1:
                md_out, rest = rest[1], rest[2:]
            elif rest[0] == "--header" and len(rest) > 1:
                header, rest = rest[1], rest[2:]
            elif rest[0] == "--ttfb" and len(rest) > 1:
                ttfb_path, rest = rest[1], rest[2:]
            else:
                print(f"report.py: unknown argument {rest[0]!r}", file=sys.stderr)
                return 2
        try:
            return cmd_table(argv[1], md_out, header, ttfb_path)
        except (ValueError, OSError) as e:
            print(f"report.py: {e}", file=sys.stderr)
            return 2
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

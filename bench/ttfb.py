#!/usr/bin/env python3
"""Time to first byte of streamed answers, for bench/run.

    ttfb.py URL BODY_FILE [-n N] [-H "Name: value" ...] [--vary START]

Sends N streaming POSTs one after the other over one keep-alive connection (after 20 unmeasured
ones), each timed from the moment the request is written to the moment the first byte of the
response body (the first server-sent event) arrives, and reads each stream to its end before the
next. Prints one tab-separated line: p50_ms p90_ms p99_ms count. With --vary START, every
`VARY` in the body is replaced by a number, START for the first request and one more for each
after it, so no two requests are the same (bench/instructions' cache-store case).

Standard library only. The client's own overhead is in every number equally, so compare rows
measured in the same run, not absolute values.
"""

import http.client
import sys
import time
import urllib.parse

WARMUP = 20


def percentile(sorted_values, pct):
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(pct / 100.0 * len(sorted_values)) - 1))
    return sorted_values[index]


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    url, body_file, rest = argv[0], argv[1], argv[2:]
    count = 500
    headers = {"Content-Type": "application/json"}
    vary = None
    while rest:
        if rest[0] == "-n" and len(rest) > 1:
            count, rest = int(rest[1]), rest[2:]
        elif rest[0] == "--vary" and len(rest) > 1:
            vary, rest = int(rest[1]), rest[2:]
        elif rest[0] == "-H" and len(rest) > 1:
            name, _, value = rest[1].partition(":")
            headers[name.strip()] = value.strip()
            rest = rest[2:]
        else:
            print(f"ttfb.py: unknown argument {rest[0]!r}", file=sys.stderr)
            return 2
    with open(body_file, "rb") as f:
        body = f.read().strip()
    parts = urllib.parse.urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    samples = []
    for i in range(WARMUP + count):
        sent = body if vary is None else body.replace(b"VARY", str(vary + i).encode())
        start = time.perf_counter()
        conn.request("POST", path, body=sent, headers=headers)
        response = conn.getresponse()
        first = response.read1(1)
        elapsed = time.perf_counter() - start
        response.read()
        if response.status != 200 or not first:
            print(f"ttfb.py: {url} answered {response.status}", file=sys.stderr)
            return 1
        if i >= WARMUP:
            samples.append(elapsed * 1000.0)
    conn.close()
    samples.sort()
    p50, p90, p99 = (percentile(samples, p) for p in (50, 90, 99))
    print(f"{p50:.3f}\t{p90:.3f}\t{p99:.3f}\t{len(samples)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""make soak: 60 s of valid requests at 16 connections against the production-mode server.

Passes with zero errors and worker memory growing under 5% from after warm-up to the end.
SOAK_SECONDS changes the length (default 60).
"""

import json
import os
import sys
import time

from servers import RESULTS, ROOT, start, wrk
from servers import SINGLE as BODY

SECONDS = int(os.environ.get("SOAK_SECONDS", 60))
CONNECTIONS = 16


def main():
    server, _ = start(ROOT / "main.py", BODY)
    with server:
        wrk(server.url, BODY, CONNECTIONS, 5)  # warm-up: caches, arenas, threads
        before = server.worker_rss_mib()
        started = time.time()
        figures = wrk(server.url, BODY, CONNECTIONS, SECONDS)
        after = server.worker_rss_mib()
    growth = (after - before) / before
    print(f"soak: {SECONDS} s at {CONNECTIONS} connections on {server.url}")
    print(f"  requests: {figures['requests']:,} ({figures['requests_per_s']:,.0f}/s), "
          f"p50 {figures['p50_ms']:.2f} ms, p99 {figures['p99_ms']:.2f} ms")
    print(f"  errors (non-2xx and socket): {figures['errors']}")
    print(f"  worker memory: {before:.1f} MiB after warm-up, {after:.1f} MiB at the end ({growth:+.2%})")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "soak.json").write_text(json.dumps({
        "started": started, "seconds": SECONDS, "connections": CONNECTIONS, **figures,
        "rss_before_mib": before, "rss_after_mib": after, "rss_growth": growth,
    }, indent=2))
    ok = figures["errors"] == 0 and growth < 0.05
    print("PASS" if ok else "FAIL: errors, or memory grew 5% or more")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

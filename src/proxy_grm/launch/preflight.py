"""Pre-flight check: every proxy replica answers ``GET /health`` before training starts.

    python -m proxy_grm.launch.preflight [--wait-s 60] URL[,URL...] [URL ...]

A URL may be a base (``http://host:port``) or the scoring endpoint. Replicas that
are still loading get ``--wait-s`` seconds. Exit 0 when all are healthy, else 1
with one line per unhealthy URL saying why. Sends ``Authorization: Bearer
$PROXY_GRM_API_KEY`` when that variable is set. Standard library only, so it runs
before anything heavy is imported.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.error
import urllib.request

from proxy_grm.reward.settings import base_url, endpoint_url


def health_url(url: str) -> str:
    """``http://host:port/health`` for a base or endpoint URL.

    >>> health_url("http://10.0.0.7:8000/get_reward_mllm")
    'http://10.0.0.7:8000/health'
    """
    return base_url(endpoint_url(url)) + "/health"


def probe(url: str, api_key: str | None, timeout_s: float = 5.0) -> str | None:
    """None when ``url`` answers 200, else why not."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {api_key}"} if api_key else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return None if response.status == 200 else f"HTTP {response.status}"
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}"
    except (urllib.error.URLError, OSError) as error:
        return str(getattr(error, "reason", error))


def wait_healthy(urls: list[str], wait_s: float, api_key: str | None) -> dict[str, str]:
    """Poll until every health URL answers or ``wait_s`` passes; returns the failures."""
    pending = {health_url(url): "not probed" for url in urls}
    deadline = time.monotonic() + wait_s
    while True:
        pending = {url: cause for url in pending if (cause := probe(url, api_key)) is not None}
        if not pending or time.monotonic() >= deadline:
            return pending
        time.sleep(1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("urls", nargs="+", help="proxy base URLs (comma-separated lists are split)")
    parser.add_argument("--wait-s", type=float, default=60.0, help="how long to wait for loading replicas")
    args = parser.parse_args(argv)
    urls = [part.strip() for arg in args.urls for part in arg.split(",") if part.strip()]
    try:
        failures = wait_healthy(urls, args.wait_s, os.environ.get("PROXY_GRM_API_KEY") or None)
    except ValueError as error:
        print(f"preflight: {error}", file=sys.stderr)
        return 1
    for url, cause in failures.items():
        print(f"preflight: proxy {url} is not healthy after {args.wait_s:g}s ({cause}); start it with "
              "`python proxy/proxy.py --model-path ...` or fix PROXY_URLS", file=sys.stderr)
    if not failures:
        print(f"preflight: {len(urls)} proxy replica(s) healthy", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""Prometheus metrics of the proxy service, served at ``GET /metrics`` in the text exposition format.

Counted for the reward endpoints (``/health`` and ``/metrics`` themselves are not):

| metric                                   | what                                                     |
|------------------------------------------|----------------------------------------------------------|
| ``proxy_grm_requests_total``             | requests answered, by ``endpoint`` and HTTP ``status``   |
| ``proxy_grm_errors_total``               | of those, the failed ones by ``kind`` (``ERROR_KINDS``)  |
| ``proxy_grm_requests_in_flight``         | requests received and not yet answered                   |
| ``proxy_grm_request_latency_seconds``    | histogram of the time to answer, by ``endpoint``         |
| ``proxy_grm_pending_critiques``          | critiques asked of the engine and not yet written        |
| ``proxy_grm_critiques_total``            | critiques written                                        |
| ``proxy_grm_truncated_critiques_total``  | of those, the ones cut off at ``--max-new-tokens``       |
| ``proxy_grm_aborted_critiques_total``    | critiques dropped because their caller left (status 499) |

Each app owns its registry (tests build many apps in one process). ``/metrics`` appends the
process-wide default registry: the process and GC collectors, and with the vLLM backend the
engine's own metrics (``vllm:prefix_cache_queries_total``/``vllm:prefix_cache_hits_total``,
``vllm:num_requests_running``/``waiting``, prompt and generation tokens, time to first token),
which vLLM records there when its stats are on.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# A critique takes from a fraction of a second (tiny models) to minutes (long critiques, a busy engine).
LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)
# The error kinds the service tells apart; any other 4xx/5xx is counted as ``http_<status>``.
ERROR_KINDS = ("unauthorized", "content_type", "too_large", "invalid_request", "bad_image", "server_error",
               "client_left")


class ServiceMetrics:
    """The service's counters, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("proxy_grm_requests", "Requests answered, by endpoint and HTTP status",
                                ["endpoint", "status"], registry=self.registry)
        self.errors = Counter("proxy_grm_errors", "Requests answered with an error, by kind", ["kind"],
                              registry=self.registry)
        self.in_flight = Gauge("proxy_grm_requests_in_flight", "Requests received and not yet answered",
                               registry=self.registry)
        self.latency = Histogram("proxy_grm_request_latency_seconds", "Time to answer a request", ["endpoint"],
                                 buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self.pending_critiques = Gauge("proxy_grm_pending_critiques",
                                       "Critiques asked of the engine and not yet written", registry=self.registry)
        self.critiques = Counter("proxy_grm_critiques", "Critiques written", registry=self.registry)
        self.truncated_critiques = Counter("proxy_grm_truncated_critiques",
                                           "Critiques cut off at --max-new-tokens", registry=self.registry)
        self.aborted_critiques = Counter("proxy_grm_aborted_critiques",
                                         "Critiques dropped because their caller closed the connection",
                                         registry=self.registry)

    def observe(self, endpoint: str, status: int, latency_s: float, error_kind: str | None) -> None:
        """Count one answered request."""
        self.requests.labels(endpoint=endpoint, status=str(status)).inc()
        self.latency.labels(endpoint=endpoint).observe(latency_s)
        if status >= 400:
            self.errors.labels(kind=error_kind or f"http_{status}").inc()

    def count(self, name: str) -> int:
        """The current value of one of this app's unlabelled counters (``/health`` reports them)."""
        return int(self.registry.get_sample_value(f"proxy_grm_{name}_total") or 0)

    def gauge(self, name: str) -> int:
        """The current value of one of this app's unlabelled gauges."""
        return int(self.registry.get_sample_value(f"proxy_grm_{name}") or 0)

    def exposition(self) -> bytes:
        """The Prometheus text format: this app's metrics, then the process-wide ones (vLLM's among them)."""
        return generate_latest(self.registry) + generate_latest(REGISTRY)

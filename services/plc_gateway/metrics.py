"""Prometheus metrics of the gateway (one registry per process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.polls = Counter("gateway_polls", "Completed poll cycles", registry=r)
        self.poll_errors = Counter("gateway_poll_errors", "Poll cycles that failed on FINS", ["kind"], registry=r)
        self.invalid_snapshots = Counter(
            "gateway_invalid_snapshots", "Snapshots rejected by the decoder (on change)", ["area"], registry=r
        )
        self.published = Counter("gateway_snapshots_published", "Snapshot publications", ["area"], registry=r)
        self.commands = Counter(
            "gateway_commands", "Commands by name and result code", ["name", "code"], registry=r
        )
        self.plc_reachable = Gauge("gateway_plc_reachable", "1 when the last poll reached the PLC", registry=r)
        self.fins_rtt = Histogram(
            "gateway_fins_rtt_seconds",
            "FINS request round trip",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=r,
        )
        # One poll = three reads (the two slot areas, one 0104 of the single areas), commands in between: under a
        # PLC's scan time this is what must stay below POLL_INTERVAL_MS (an overrun delays every snapshot).
        self.poll_seconds = Histogram(
            "gateway_poll_seconds",
            "Duration of one poll (all area reads, commands served in between)",
            buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0),
            registry=r,
        )
        self.poll_overruns = Counter(
            "gateway_poll_overruns", "Polls that took longer than the poll period", registry=r
        )
        self.fins_timeouts = Gauge("gateway_fins_timeouts", "FINS requests that timed out (total)", registry=r)
        self.fins_retries = Gauge("gateway_fins_retries", "FINS retransmissions (total)", registry=r)
        self.fins_dropped = Gauge("gateway_fins_dropped_datagrams", "Late or stray datagrams dropped", registry=r)

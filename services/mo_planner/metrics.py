"""mo_planner's Prometheus metrics (on the worker's registry, served at /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class PlannerMetrics:
    def __init__(self, r: CollectorRegistry) -> None:
        self.queued = Counter("planner_batches_queued", "MOs taken from Odoo into mo_batch", registry=r)
        self.written = Counter("planner_batches_written", "write_batch confirmed by the gateway", registry=r)
        self.finished = Counter("planner_batches_finished", "Final results stored", ["outcome"], registry=r)
        self.acks = Counter("planner_acks", "ack_slot replies", ["code"], registry=r)
        self.alarms = Counter("planner_alarms", "Snapshots never applied (invalid / unexpected)", registry=r)
        self.odoo_errors = Counter("planner_odoo_errors", "Failed Odoo MO list calls", registry=r)
        self.queue_depth = Gauge("planner_queue_depth", "Rows in mo_batch by state", ["state"], registry=r)

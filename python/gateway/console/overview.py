"""The overview's figures, from the audit records of the chosen range: every worker and instance writes them to the
one ledger, so the figures are the whole gateway's, not the serving worker's. Pure: records in, a JSON-ready dict
out (the page's script draws it)."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from gateway.pipeline.stages.observe import CACHE_PROVIDER_LABEL
from gateway.records.audit import AuditRecord

BUCKETS = 30
"""Points on the time axis of the requests plot, whatever the range."""


def figures(records: Iterable[AuditRecord], now: float, range_s: float) -> dict[str, Any]:
    start = now - range_s
    width = range_s / BUCKETS
    ok = [0] * BUCKETS
    failed = [0] * BUCKETS
    by_code: Counter[str] = Counter()
    latencies: defaultdict[str, list[float]] = defaultdict(list)
    first_chunks: defaultdict[str, list[float]] = defaultdict(list)
    spend_team: defaultdict[str, float] = defaultdict(float)
    spend_model: defaultdict[str, float] = defaultdict(float)
    guardrails: Counter[str] = Counter()
    hits = lookups = 0
    saved = 0.0
    for record in records:
        slot = min(BUCKETS - 1, max(0, int((record.at - start) / width)))
        (ok if record.status == "OK" else failed)[slot] += 1
        by_code[record.status] += 1
        if record.provider and record.status == "OK":
            latencies[served_by(record)].append(record.latency_ms)
        if record.provider and record.ttfc_ms is not None:  # a stream cut short after its first chunk counts too
            first_chunks[served_by(record)].append(record.ttfc_ms)
        if record.cost_usd:
            spend_team[record.team] += record.cost_usd
            spend_model[record.served_model or record.model] += record.cost_usd
        for action in record.guardrails:
            guardrails[f"{action.get('type')}: {action.get('action')}"] += int(action.get("count") or 1)
        if record.kind in ("chat", "stream", "embed"):
            lookups += 1
            if record.cache is not None:
                hits += 1
                saved += record.cache_saved_usd
    return {
        "range_s": range_s,
        "times": [start + width * (i + 1) for i in range(BUCKETS)],
        "ok": ok,
        "errors": failed,
        "by_code": dict(by_code.most_common()),
        "latency": _quantiles(latencies),
        "ttfc": _quantiles(first_chunks),
        "spend_team": _rounded(spend_team),
        "spend_model": _rounded(spend_model),
        "cache": {"hits": hits, "misses": lookups - hits, "saved_usd": round(saved, 6)},
        "guardrails": dict(guardrails.most_common()),
    }


def served_by(record: AuditRecord) -> str:
    """ "model / provider", the cache standing for the provider of the answers it gave (as in the metrics), so that
    its quick answers do not blur the provider's figures."""
    provider = CACHE_PROVIDER_LABEL if record.cache is not None else record.provider
    return f"{record.served_model or record.model} / {provider}"


def _quantiles(samples: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """p50 and p99 of each name's samples, names in order."""
    quantiles = {}
    for name, values in sorted(samples.items()):
        ordered = sorted(values)
        quantiles[name] = {"p50": _percentile(ordered, 50), "p99": _percentile(ordered, 99)}
    return quantiles


def _percentile(ordered: list[float], percentile: float) -> float:
    """Nearest rank: the value below which `percentile` % of the calls fall."""
    rank = max(1, math.ceil(len(ordered) * percentile / 100))
    return round(ordered[rank - 1], 1)


def _rounded(spend: dict[str, float]) -> dict[str, float]:
    """Largest first."""
    return {name: round(usd, 6) for name, usd in sorted(spend.items(), key=lambda item: -item[1])}

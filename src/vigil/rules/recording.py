"""Recording rules: the expression's result stored under a new metric name."""

from __future__ import annotations

from vigil.model.labels import METRIC_NAME, Labels
from vigil.rules.base import QueryFunc, RuleBase, RuleEvalError, Vector, query_vector


class RecordingRule(RuleBase):
    """`record: name` with static `labels` (no templating, as Prometheus)."""

    kind = "recording"

    def eval(self, t_ms: int, query_offset_ms: int, query: QueryFunc, limit: int = 0) -> Vector:
        """Samples to store for evaluation time `t_ms` (int ms). Raises RuleEvalError."""
        ts = t_ms - query_offset_ms
        out: Vector = []
        seen: set[Labels] = set()
        for s in query_vector(query, self.expr, ts):
            d = s.labels.to_dict()
            d[METRIC_NAME] = self.name
            d.update(self.labels)
            lbls = Labels.from_dict(d)
            if lbls in seen:
                raise RuleEvalError(
                    "vector contains metrics with the same labelset after applying rule labels"
                )
            seen.add(lbls)
            out.append((lbls, ts, s.v))
        if limit > 0 and len(out) > limit:
            raise RuleEvalError(f"exceeded limit of {limit} with {len(out)} series")
        return out

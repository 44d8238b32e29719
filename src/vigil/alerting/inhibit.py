"""Inhibition: a firing source alert mutes matching target alerts.

A target is muted when some rule's target matchers accept it and a *firing*
alert accepted by the source matchers has the same values for every `equal`
label (absent counts as equal to absent). As in Alertmanager, when the target
also matches the rule's source side, source alerts that match the target side
too are disregarded: two alerts matching both sides never inhibit each other
(nor does an alert inhibit itself).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from vigil.alerting.alert import Alert
from vigil.alerting.config import InhibitRuleConfig
from vigil.model.labels import Labels
from vigil.model.matchers import matches_all


class Inhibitor:
    """Answers `mutes(labels)` from the current alerts (provided by `alerts()`)."""

    def __init__(
        self,
        rules: Iterable[InhibitRuleConfig],
        alerts: Callable[[], Iterable[Alert]],
        now: Callable[[], float],
    ) -> None:
        self.rules = tuple(rules)
        self._alerts = alerts
        self._now = now

    def inhibited_by(self, labels: Labels) -> list[str]:
        """Fingerprints of the firing source alerts that inhibit `labels`."""
        rules = [r for r in self.rules if matches_all(r.target_matchers, labels)]
        if not rules:
            return []
        now = self._now()
        two_sided = [matches_all(r.source_matchers, labels) for r in rules]
        out: set[str] = set()
        for a in self._alerts():
            if a.resolved(now):
                continue
            for r, exclude in zip(rules, two_sided, strict=True):
                if (
                    matches_all(r.source_matchers, a.labels)
                    and all(a.labels.get(n) == labels.get(n) for n in r.equal)
                    and not (exclude and matches_all(r.target_matchers, a.labels))
                ):
                    out.add(a.fingerprint)
        return sorted(out)

    def mutes(self, labels: Labels) -> bool:
        return bool(self.inhibited_by(labels))

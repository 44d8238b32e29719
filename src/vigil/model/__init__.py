"""The shared vocabulary: labels, matchers and samples, used by every subsystem."""

from vigil.model.labels import METRIC_NAME, Labels
from vigil.model.matchers import Matcher, MatchType
from vigil.model.samples import STALE_NAN, is_stale, stale_mask

__all__ = ["METRIC_NAME", "STALE_NAN", "Labels", "MatchType", "Matcher", "is_stale", "stale_mask"]

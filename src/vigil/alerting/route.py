"""The routing tree: which receivers get an alert and how it is grouped.

`Route.match(labels)` walks the tree depth-first as Alertmanager does: a node
matches when its matchers do; among its children the first match wins unless
that child has ``continue: true``; a matching node with no matching child is
itself the result. Options (receiver, group_by, timers, time intervals)
inherit from the parent when unset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vigil.alerting.config import (
    DEFAULT_GROUP_INTERVAL,
    DEFAULT_GROUP_WAIT,
    DEFAULT_REPEAT_INTERVAL,
    AlertmanagerConfig,
    RouteConfig,
)
from vigil.alerting.matcher_parse import format_matchers
from vigil.model.labels import Labels
from vigil.model.matchers import Matcher, matches_all


@dataclass(frozen=True)
class RouteOpts:
    """Effective (inherited) options of a route. Durations in seconds."""

    receiver: str
    group_by: frozenset[str]
    group_by_all: bool
    group_wait: float
    group_interval: float
    repeat_interval: float
    mute_time_intervals: tuple[str, ...]
    active_time_intervals: tuple[str, ...]


def _sort_key(m: Matcher) -> tuple[str, str, str]:
    return (m.name, m.value, m.type.value)


@dataclass(eq=False)
class Route:
    """A node of the routing tree with effective options; build with `Route.build`."""

    opts: RouteOpts
    matchers: tuple[Matcher, ...]
    continue_: bool
    parent: Route | None = None
    routes: list[Route] = field(default_factory=list)
    index: int = 0

    @classmethod
    def build(cls, cfg: RouteConfig, parent: Route | None = None, index: int = 0) -> Route:
        p = parent.opts if parent else None
        if cfg.group_by is not None:
            gb = frozenset(x for x in cfg.group_by if x != "...")
            gb_all = "..." in cfg.group_by
        else:
            gb = p.group_by if p else frozenset()
            gb_all = p.group_by_all if p else False

        def pick(v: float | None, inherited: float | None, default: float) -> float:
            if v is not None:
                return v
            return inherited if inherited is not None else default

        opts = RouteOpts(
            receiver=cfg.receiver or (p.receiver if p else ""),
            group_by=gb,
            group_by_all=gb_all,
            group_wait=pick(cfg.group_wait, p.group_wait if p else None, DEFAULT_GROUP_WAIT),
            group_interval=pick(
                cfg.group_interval, p.group_interval if p else None, DEFAULT_GROUP_INTERVAL
            ),
            repeat_interval=pick(
                cfg.repeat_interval, p.repeat_interval if p else None, DEFAULT_REPEAT_INTERVAL
            ),
            # Time intervals are not inherited in Alertmanager: only a route's own apply.
            mute_time_intervals=cfg.mute_time_intervals,
            active_time_intervals=cfg.active_time_intervals,
        )
        node = cls(
            opts=opts,
            # Alertmanager sorts a route's matchers; the order shows in route keys.
            matchers=tuple(sorted(cfg.matchers, key=_sort_key)),
            continue_=cfg.continue_,
            parent=parent,
            index=index,
        )
        node.routes = [cls.build(c, node, i) for i, c in enumerate(cfg.routes)]
        return node

    def match(self, labels: Labels) -> list[Route]:
        """The routes an alert with `labels` is delivered through (possibly several)."""
        if not matches_all(self.matchers, labels):
            return []
        out: list[Route] = []
        for child in self.routes:
            got = child.match(labels)
            out.extend(got)
            if got and not child.continue_:
                break
        return out or [self]

    def key(self) -> str:
        """Alertmanager's route key, e.g. ``{}/{severity="critical"}``."""
        own = format_matchers(self.matchers)
        return f"{self.parent.key()}/{own}" if self.parent else own

    def id(self) -> str:
        """A unique id: the key plus the node's index under its parent."""
        own = format_matchers(self.matchers)
        if self.parent is None:
            return own
        return f"{self.parent.id()}/{own}/{self.index}"

    def group_labels(self, labels: Labels) -> Labels:
        """The labels an alert is grouped by on this route."""
        if self.opts.group_by_all:
            return labels
        return labels.keep(*self.opts.group_by)

    def walk(self) -> list[Route]:
        out = [self]
        for c in self.routes:
            out.extend(c.walk())
        return out


def group_key(route: Route, group_labels: Labels) -> str:
    """``<route key>:<group labels>`` as Alertmanager writes it (``{a="1", b="2"}``)."""
    inner = ", ".join(f'{k}="{_escape(v)}"' for k, v in group_labels)
    return f"{route.key()}:{{{inner}}}"


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def test_routes(config: AlertmanagerConfig, labels: Labels | dict[str, str]) -> list[str]:
    """Receiver names for `labels`, in order, like ``amtool config routes test``."""
    ls = labels if isinstance(labels, Labels) else Labels.from_dict(labels)
    return [r.opts.receiver for r in Route.build(config.route).match(ls)]


test_routes.__test__ = False  # type: ignore[attr-defined]  # not a pytest test

"""Relabeling: every action and its edges, table-driven, plus rule validation."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from vigil.model.labels import Labels
from vigil.model.relabel import RelabelConfig, compile_template, relabel


def L(**kw: str) -> Labels:
    return Labels.from_dict(kw)


def R(**kw: Any) -> RelabelConfig:
    return RelabelConfig.model_validate(kw)


CASES: list[tuple[str, dict[str, str], list[dict[str, Any]], dict[str, str] | None]] = [
    (
        "replace-default-copies",
        {"a": "foo"},
        [{"source_labels": ["a"], "target_label": "b"}],
        {"a": "foo", "b": "foo"},
    ),
    (
        "replace-groups-and-separator",
        {"a": "foo", "b": "bar"},
        [
            {
                "source_labels": ["a", "b"],
                "regex": "f(.*);(.*)r",
                "target_label": "x",
                "replacement": "$1-${2}",
            }
        ],
        {"a": "foo", "b": "bar", "x": "oo-ba"},
    ),
    (
        "replace-custom-separator",
        {"a": "foo", "b": "bar"},
        [{"source_labels": ["a", "b"], "separator": "/", "target_label": "x"}],
        {"a": "foo", "b": "bar", "x": "foo/bar"},
    ),
    (
        "replace-missing-label-is-empty",
        {"a": "foo"},
        [{"source_labels": ["a", "missing"], "target_label": "x"}],
        {"a": "foo", "x": "foo;"},
    ),
    (
        "replace-no-match-no-change",
        {"a": "foo"},
        [{"source_labels": ["a"], "regex": "bar", "target_label": "x", "replacement": "y"}],
        {"a": "foo"},
    ),
    (
        "replace-anchored",
        {"a": "xfoox"},
        [{"source_labels": ["a"], "regex": "foo", "target_label": "x", "replacement": "y"}],
        {"a": "xfoox"},
    ),
    (
        "replace-empty-result-deletes",
        {"a": "foo", "x": "old"},
        [{"source_labels": ["missing"], "target_label": "x"}],
        {"a": "foo"},
    ),
    (
        "replace-empty-source-sets-constant",
        {"a": "foo"},
        [{"target_label": "env", "replacement": "prod"}],
        {"a": "foo", "env": "prod"},
    ),
    (
        "replace-target-template",
        {"a": "some-name-value"},
        [
            {
                "source_labels": ["a"],
                "regex": "some-([^-]+)-(.+)",
                "target_label": "${1}",
                "replacement": "$2",
            }
        ],
        {"a": "some-name-value", "name": "value"},
    ),
    (
        "replace-target-template-invalid-name-skipped",
        {"a": "some-1bad-value"},
        [
            {
                "source_labels": ["a"],
                "regex": "some-([^-]+)-(.+)",
                "target_label": "${1}",
                "replacement": "$2",
            }
        ],
        {"a": "some-1bad-value"},
    ),
    (
        "replace-named-group",
        {"a": "host:9100"},
        [
            {
                "source_labels": ["a"],
                "regex": "(?P<host>[^:]+):.*",
                "target_label": "h",
                "replacement": "$host",
            }
        ],
        {"a": "host:9100", "h": "host"},
    ),
    (
        "replace-dollar-name-greedy",
        {"a": "foo"},
        [{"source_labels": ["a"], "regex": "(f)oo", "target_label": "x", "replacement": "$1x!"}],
        {"a": "foo", "x": "!"},
    ),
    (
        "replace-literal-dollar",
        {"a": "foo"},
        [{"source_labels": ["a"], "target_label": "x", "replacement": "$$1 $"}],
        {"a": "foo", "x": "$1 $"},
    ),
    (
        "replace-address-port",
        {"__address__": "10.0.0.1:8080"},
        [
            {
                "source_labels": ["__address__"],
                "regex": "([^:]+)(?::\\d+)?",
                "target_label": "__address__",
                "replacement": "$1:9100",
            }
        ],
        {"__address__": "10.0.0.1:9100"},
    ),
    (
        "tmp-label-chain",
        {"a": "foo"},
        [
            {"source_labels": ["a"], "target_label": "__tmp_x", "replacement": "pre-$1"},
            {"source_labels": ["__tmp_x"], "target_label": "b"},
        ],
        {"a": "foo", "b": "pre-foo", "__tmp_x": "pre-foo"},
    ),
    (
        "keep-match",
        {"a": "foo"},
        [{"source_labels": ["a"], "regex": "f.*", "action": "keep"}],
        {"a": "foo"},
    ),
    (
        "keep-nomatch",
        {"a": "foo"},
        [{"source_labels": ["a"], "regex": "b.*", "action": "keep"}],
        None,
    ),
    (
        "keep-missing-empty",
        {"a": "foo"},
        [{"source_labels": ["z"], "regex": ".+", "action": "keep"}],
        None,
    ),
    (
        "drop-match",
        {"a": "foo"},
        [{"source_labels": ["a"], "regex": "foo|bar", "action": "drop"}],
        None,
    ),
    (
        "drop-nomatch",
        {"a": "foo"},
        [{"source_labels": ["a"], "regex": "fo", "action": "DROP"}],
        {"a": "foo"},
    ),
    (
        "keepequal-equal",
        {"a": "1", "b": "1"},
        [{"source_labels": ["a"], "target_label": "b", "action": "keepequal"}],
        {"a": "1", "b": "1"},
    ),
    (
        "keepequal-differ",
        {"a": "1", "b": "2"},
        [{"source_labels": ["a"], "target_label": "b", "action": "keepequal"}],
        None,
    ),
    (
        "dropequal-equal",
        {"a": "1", "b": "1"},
        [{"source_labels": ["a"], "target_label": "b", "action": "dropequal"}],
        None,
    ),
    (
        "dropequal-both-missing-equal",
        {"c": "1"},
        [{"source_labels": ["a"], "target_label": "b", "action": "dropequal"}],
        None,
    ),
    (
        "hashmod",
        {"c": "baz"},
        [{"source_labels": ["c"], "target_label": "d", "modulus": 1000, "action": "hashmod"}],
        {"c": "baz", "d": "976"},
    ),
    (
        "labelmap",
        {"__meta_kubernetes_pod_label_app": "web", "__meta_other": "x", "job": "j"},
        [{"regex": "__meta_kubernetes_pod_label_(.+)", "action": "labelmap"}],
        {"__meta_kubernetes_pod_label_app": "web", "__meta_other": "x", "job": "j", "app": "web"},
    ),
    (
        "labelmap-replacement-template",
        {"foo_a": "1", "foo_b": "2"},
        [{"regex": "foo_(.*)", "replacement": "bar_${1}", "action": "labelmap"}],
        {"foo_a": "1", "foo_b": "2", "bar_a": "1", "bar_b": "2"},
    ),
    (
        "labeldrop",
        {"a": "1", "b1": "2", "b2": "3"},
        [{"regex": "b.", "action": "labeldrop"}],
        {"a": "1"},
    ),
    (
        "labelkeep",
        {"a": "1", "b1": "2", "b2": "3"},
        [{"regex": "b.", "action": "labelkeep"}],
        {"b1": "2", "b2": "3"},
    ),
    (
        "lowercase",
        {"a": "FoO"},
        [{"source_labels": ["a"], "target_label": "l", "action": "lowercase"}],
        {"a": "FoO", "l": "foo"},
    ),
    (
        "uppercase",
        {"a": "FoO"},
        [{"source_labels": ["a"], "target_label": "a", "action": "Uppercase"}],
        {"a": "FOO"},
    ),
    (
        "regex-dot-matches-newline",
        {"a": "x\ny"},
        [{"source_labels": ["a"], "regex": "x.y", "action": "keep"}],
        {"a": "x\ny"},
    ),
    (
        "drop-then-nothing-else-runs",
        {"a": "1"},
        [
            {"source_labels": ["a"], "action": "drop", "regex": "1"},
            {"target_label": "b", "replacement": "x"},
        ],
        None,
    ),
]


@pytest.mark.parametrize(("name", "inp", "rules", "want"), CASES, ids=[c[0] for c in CASES])
def test_relabel(
    name: str, inp: dict[str, str], rules: list[dict[str, Any]], want: dict[str, str] | None
) -> None:
    got = relabel(Labels.from_dict(inp), [R(**r) for r in rules])
    if want is None:
        assert got is None
    else:
        assert got == Labels.from_dict(want)


def test_no_rules_returns_same_object() -> None:
    lbls = L(a="1")
    assert relabel(lbls, []) is lbls


def test_defaults() -> None:
    c = RelabelConfig(target_label="x")
    assert c.action.value == "replace"
    assert c.separator == ";"
    assert c.regex.pattern == "(.*)"
    assert c.replacement == "$1"
    assert c.modulus == 0


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"action": "hashmod", "target_label": "x"}, "requires non-zero modulus"),
        ({"action": "replace"}, "requires 'target_label'"),
        ({"action": "hashmod", "modulus": 2}, "requires 'target_label'"),
        ({"action": "replace", "target_label": "bad-name"}, "invalid 'target_label'"),
        ({"action": "replace", "target_label": "${1}-x"}, "invalid 'target_label'"),
        (
            {"action": "lowercase", "target_label": "x", "replacement": "y"},
            "'replacement' can not be set",
        ),
        ({"action": "labelmap", "replacement": "a-b"}, "invalid 'replacement'"),
        ({"action": "labeldrop", "source_labels": ["a"]}, "requires only 'regex'"),
        ({"action": "labelkeep", "target_label": "a"}, "requires only 'regex'"),
        (
            {"action": "keepequal", "target_label": "a", "regex": "x"},
            "requires only 'source_labels'",
        ),
        ({"action": "explode"}, 'unknown relabel action "explode"'),
        ({"regex": "(unclosed"}, "invalid regular expression `(unclosed`: missing )"),
        ({"source_labels": ["bad-label"], "action": "keep"}, "not a valid label name"),
        ({"action": "keep", "frob": 1}, "field frob not found"),
    ],
)
def test_invalid_rules(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        R(**rule)
    assert message in str(exc.value)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("$1", (1,)),
        ("${1}", (1,)),
        ("a$1b", ("a", ("1b",))),
        ("${1}b", (1, "b")),
        ("$$", ("$",)),
        ("$", ("$",)),
        ("${1", ("${1",)),
        ("$01", (("01",),)),
        ("$name.x", (("name",), ".x")),
        ("plain", ("plain",)),
    ],
)
def test_template_compilation_follows_go_expand(template: str, expected: tuple[Any, ...]) -> None:
    assert compile_template(template) == expected


def test_config_is_frozen_and_regex_compiled_once() -> None:
    c = R(source_labels=["a"], regex="f(o+)", target_label="x", replacement="$1")
    rx = c.regex.compiled
    for _ in range(3):
        relabel(L(a="foo"), [c])
    assert c.regex.compiled is rx
    with pytest.raises(ValidationError):
        c.replacement = "y"  # type: ignore[misc]


def test_serializes_back_to_prometheus_fields() -> None:
    c = R(source_labels=["a"], regex="x.*", target_label="y", action="Keep")
    d = c.model_dump(mode="json")
    assert d["regex"] == "x.*"
    assert d["action"] == "keep"
    assert RelabelConfig.model_validate(d) == c


def test_speed_metric_relabel() -> None:
    """Per-series cost stays small (a tripwire, loose for shared CI machines)."""
    import time

    rules = [
        R(source_labels=["__name__"], regex="go_.*", action="drop"),
        R(source_labels=["instance"], regex="([^:]+):.*", target_label="host"),
        R(regex="tmp_.*", action="labeldrop"),
    ]
    sets = [L(__name__=f"m_{i}", instance=f"h{i}:9100", job="j", tmp_a="1") for i in range(10_000)]
    t0 = time.perf_counter()
    for s in sets:
        relabel(s, rules)
    assert time.perf_counter() - t0 < 5.0


def test_equality_ignores_memo() -> None:
    a = R(source_labels=["a"], target_label="b")
    b = R(source_labels=["a"], target_label="b")
    relabel(L(a="x"), [a])
    assert a == b and hash(a) == hash(b)
    assert a != R(source_labels=["a"], target_label="c")


def test_memo_is_bounded_and_results_stay_correct() -> None:
    c = R(source_labels=["a"], regex="v(\\d+)", target_label="n")
    for i in range(10_000):
        assert relabel(L(a=f"v{i}"), [c]) == L(a=f"v{i}", n=str(i))
    assert len(c._rule.cache) <= 4096


def test_unchanged_returns_same_object() -> None:
    lbls = L(a="1", b="2")
    rules = [
        R(source_labels=["a"], regex="1", action="keep"),
        R(source_labels=["a"], target_label="b", replacement="2"),
    ]
    assert relabel(lbls, rules) is lbls

"""Binary operators: arithmetic, comparison, set operators and vector matching.

Label sets do not change across the steps of a query, so series are paired by
matching signature once; the operator then runs on whole [series, steps] arrays,
with presence masks deciding which pairs exist at each step. Duplicate-match
errors are raised only when the duplicates coexist at some step, as Prometheus
(which matches step by step) would.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from vigil.model.labels import METRIC_NAME, Labels
from vigil.promql.errors import ExecutionError
from vigil.promql.eval_types import ScalarBlock, VectorBlock
from vigil.promql.parser import ast

if TYPE_CHECKING:
    from vigil.promql.evaluator import Evaluator

COMPARISON_OPS = frozenset({"==", "!=", ">", "<", ">=", "<="})
SET_OPS = frozenset({"and", "or", "unless"})


def apply_op(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise `a op b` with Go float semantics (comparisons give 1.0/0.0)."""
    with np.errstate(all="ignore"):
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return np.true_divide(a, b)
        if op == "%":
            return np.fmod(a, b)
        if op == "^":
            return np.power(a, b)
        if op == "atan2":
            return np.arctan2(a, b)
        if op == "==":
            return (a == b).astype(np.float64)
        if op == "!=":
            return (a != b).astype(np.float64)
        if op == ">":
            return (a > b).astype(np.float64)
        if op == "<":
            return (a < b).astype(np.float64)
        if op == ">=":
            return (a >= b).astype(np.float64)
        if op == "<=":
            return (a <= b).astype(np.float64)
    raise ExecutionError(f"unknown binary operator {op!r}")


def binary(ev: Evaluator, node: ast.BinaryExpr) -> ScalarBlock | VectorBlock:
    lhs = ev.eval(node.lhs)
    rhs = ev.eval(node.rhs)
    op = node.op
    if isinstance(lhs, ScalarBlock) and isinstance(rhs, ScalarBlock):
        return ScalarBlock(apply_op(op, lhs.values, rhs.values))
    if isinstance(lhs, VectorBlock) and isinstance(rhs, ScalarBlock):
        return _vector_scalar(op, lhs, rhs.values, swap=False, return_bool=node.return_bool)
    if isinstance(lhs, ScalarBlock) and isinstance(rhs, VectorBlock):
        return _vector_scalar(op, rhs, lhs.values, swap=True, return_bool=node.return_bool)
    if isinstance(lhs, VectorBlock) and isinstance(rhs, VectorBlock):
        matching = node.matching or ast.VectorMatching(
            card="many-to-many" if op in SET_OPS else "one-to-one"
        )
        if op in SET_OPS:
            return _set_op(op, lhs, rhs, matching)
        return _vector_vector(op, lhs, rhs, matching, node.return_bool)
    raise ExecutionError(f"operator {op!r} is not defined on these operand types")


def _vector_scalar(
    op: str, vec: VectorBlock, scalar: np.ndarray, swap: bool, return_bool: bool
) -> VectorBlock:
    s = scalar[None, :]
    res = apply_op(op, s, vec.values) if swap else apply_op(op, vec.values, s)
    if op in COMPARISON_OPS:
        if return_bool:
            return VectorBlock(
                vec.labels, np.ones(vec.n_series, dtype=bool), res, vec.present.copy()
            )
        # A filter keeps the vector's own value, whichever side it is on.
        return VectorBlock(
            vec.labels, vec.drop_name, vec.values, vec.present & (res == 1.0)
        ).compact()
    return VectorBlock(vec.labels, np.ones(vec.n_series, dtype=bool), res, vec.present.copy())


def signature_fn(matching: ast.VectorMatching) -> Callable[[Labels], tuple]:
    names = frozenset(matching.labels)
    if matching.on:
        return lambda lbls: tuple(p for p in lbls if p[0] in names)
    drop = names | {METRIC_NAME}
    return lambda lbls: tuple(p for p in lbls if p[0] not in drop)


def _group_rows(sigs: list[tuple]) -> dict[tuple, list[int]]:
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, s in enumerate(sigs):
        groups[s].append(i)
    return groups


def _set_op(
    op: str, lhs: VectorBlock, rhs: VectorBlock, matching: ast.VectorMatching
) -> VectorBlock:
    sig = signature_fn(matching)
    lsig = [sig(x) for x in lhs.labels]
    rsig = [sig(x) for x in rhs.labels]
    n_steps = lhs.values.shape[1]
    if op in ("and", "unless"):
        rpresent: dict[tuple, np.ndarray] = {}
        for s, rows in _group_rows(rsig).items():
            rpresent[s] = np.asarray(rhs.present[rows].any(axis=0), dtype=bool)
        none = np.zeros(n_steps, dtype=bool)
        mask = np.array([rpresent.get(s, none) for s in lsig], dtype=bool).reshape(
            lhs.n_series, n_steps
        )
        present = lhs.present & mask if op == "and" else lhs.present & ~mask
        return VectorBlock(lhs.labels, lhs.drop_name, lhs.values, present).compact()
    lpresent: dict[tuple, np.ndarray] = {}
    for s, rows in _group_rows(lsig).items():
        lpresent[s] = np.asarray(lhs.present[rows].any(axis=0), dtype=bool)
    none = np.zeros(n_steps, dtype=bool)
    mask = np.array([lpresent.get(s, none) for s in rsig], dtype=bool).reshape(
        rhs.n_series, n_steps
    )
    rpres = rhs.present & ~mask
    out = VectorBlock(
        list(lhs.labels) + list(rhs.labels),
        np.concatenate([lhs.drop_name, rhs.drop_name]),
        np.concatenate([lhs.values, rhs.values]),
        np.concatenate([lhs.present, rpres]),
    )
    return out.compact()


def go_labels_string(lbls: Labels | tuple) -> str:
    """Labels as Prometheus's `Labels.String()` prints them: every pair, quoted."""
    parts = []
    for k, v in lbls:
        val = v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        parts.append(f'{k}="{val}"')
    return "{" + ", ".join(parts) + "}"


def _fmt_sig(sig: tuple) -> str:
    return go_labels_string(sig)


def _check_unique(
    block: VectorBlock, groups: dict[tuple, list[int]], active: np.ndarray, side: str
) -> None:
    """Raise when two series of one match group are present at the same step."""
    for s, rows in groups.items():
        if len(rows) < 2:
            continue
        cnt = block.present[rows].sum(axis=0)
        if ((cnt > 1) & active).any():
            pair = [go_labels_string(block.labels[r]) for r in rows[:2]]
            raise ExecutionError(
                f"found duplicate series for the match group {_fmt_sig(s)} on the {side} hand-side "
                f"of the operation: [{pair[0]}, {pair[1]}];many-to-many matching not allowed: "
                "matching labels must be unique on one side"
            )


def _result_labels(
    base: Labels, other: Labels, matching: ast.VectorMatching, one_to_one: bool
) -> Labels:
    lbls = base
    if one_to_one:
        lbls = lbls.keep(*matching.labels) if matching.on else lbls.without(*matching.labels)
    if matching.include:
        d = lbls.to_dict()
        for name in matching.include:
            v = other.get(name)
            if v:
                d[name] = v
            else:
                d.pop(name, None)
        lbls = Labels.from_dict(d)
    return lbls


def _vector_vector(
    op: str, lhs: VectorBlock, rhs: VectorBlock, matching: ast.VectorMatching, return_bool: bool
) -> VectorBlock:
    n_steps = lhs.values.shape[1]
    if lhs.n_series == 0 or rhs.n_series == 0:
        return VectorBlock.empty(n_steps)
    card = matching.card
    if card == "many-to-many":
        raise ExecutionError("many-to-many only allowed for set operators")
    swap = card == "one-to-many"
    many, one = (rhs, lhs) if swap else (lhs, rhs)
    sig = signature_fn(matching)
    msig = [sig(x) for x in many.labels]
    osig = [sig(x) for x in one.labels]
    ogroups = _group_rows(osig)
    many_active = np.asarray(many.present.any(axis=0), dtype=bool)
    _check_unique(one, ogroups, many_active, "left" if swap else "right")
    # Merge each "one" group into a single virtual row (at most one is present per step).
    okeys = list(ogroups)
    oindex = {k: i for i, k in enumerate(okeys)}
    ovals = np.zeros((len(okeys), n_steps))
    opres = np.zeros((len(okeys), n_steps), dtype=bool)
    orep: list[int] = []
    for i, k in enumerate(okeys):
        rows = ogroups[k]
        orep.append(rows[0])
        if len(rows) == 1:
            ovals[i] = one.values[rows[0]]
            opres[i] = one.present[rows[0]]
        else:
            p = one.present[rows]
            ovals[i] = np.where(p, one.values[rows], 0.0).sum(axis=0)
            opres[i] = p.any(axis=0)
    mrows = [i for i, s in enumerate(msig) if s in oindex]
    if not mrows:
        return VectorBlock.empty(n_steps)
    orows = [oindex[msig[i]] for i in mrows]
    mv = many.values[mrows]
    ov = ovals[orows]
    present = many.present[mrows] & opres[orows]
    if card == "one-to-one":
        mgroups = _group_rows([msig[i] for i in mrows])
        for rows in mgroups.values():
            if len(rows) > 1 and (present[rows].sum(axis=0) > 1).any():
                raise ExecutionError(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                )
    lv, rv = (ov, mv) if swap else (mv, ov)
    res = apply_op(op, lv, rv)
    one_to_one = card == "one-to-one"
    labels = []
    for pos, row in enumerate(mrows):
        other = one.labels[orep[orows[pos]]]
        labels.append(_result_labels(many.labels[row], other, matching, one_to_one))
    if op in COMPARISON_OPS and not return_bool:
        present = present & (res == 1.0)
        values = lv
        drop = many.drop_name[mrows]
    else:
        values = res
        drop = np.ones(len(mrows), dtype=bool)
    if one_to_one and matching.on and METRIC_NAME not in matching.labels:
        drop = np.zeros(len(mrows), dtype=bool)
    out = VectorBlock(labels, drop, values, present).compact()
    _check_output_unique(out)
    return out


def _check_output_unique(block: VectorBlock) -> None:
    groups = _group_rows(list(block.labels))
    for rows in groups.values():
        if len(rows) > 1 and (block.present[rows].sum(axis=0) > 1).any():
            raise ExecutionError(
                "multiple matches for labels: grouping labels must ensure unique matches"
            )

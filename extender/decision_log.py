"""Bounded memory of the extender's recent decisions: per pod, each node's score parts and each filter reason.

`/extender/placements` answers "where did it go"; this answers "why there, and why not elsewhere" for the
console (issue 17). The service records each filter and prioritize call in one line. A record keeps
references to what the call built anyway (the failed-node dicts, the score arrays, the append-only name
list), so the scheduling path pays one dict insert; grouping reasons and ranking nodes happen when someone
reads the log. At most `maxlen` pods are remembered (oldest dropped), so memory stays bounded: a record's
arrays and dicts hold at most one entry per candidate node (100 pods x 1,000 candidates: a few MB).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from extender.arrays import IntArray

if TYPE_CHECKING:
    from extender.core import ScoreParts
    from extender.inventory import PodAsk
    from extender.service import Placement

DEFAULT_MAXLEN = 100
#: a filter and the prioritize that follows it (same pod key) within this many seconds are one decision
MERGE_WINDOW_S = 60.0


@dataclass
class _Record:
    seq: int
    at: float
    key: str
    namespace: str
    name: str
    ask: str
    candidates: int = 0
    passed: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    unresolvable: dict[str, str] = field(default_factory=dict)
    # prioritize: rows (into `names`) aligned with the score arrays
    names: Sequence[str] = ()
    rows: IntArray | None = None
    parts: ScoreParts | None = None
    ints: IntArray | None = None
    placement: Placement | None = None


class DecisionLog:
    """Thread-safe: the service appends under the node-state lock; readers (console) take only ours."""

    def __init__(self, maxlen: int = DEFAULT_MAXLEN, clock: Callable[[], float] = time.time) -> None:
        self.maxlen = maxlen
        self.clock = clock
        self.seq = 0
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self._rendered: dict[str, tuple[tuple[int, int, int], dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()  # readers only: the service never waits on it

    def __len__(self) -> int:
        return len(self._records)

    def _new(self, ask: PodAsk) -> _Record:
        self.seq += 1
        rec = _Record(self.seq, self.clock(), ask.key, ask.namespace, ask.name, ask.gpu_label)
        self._records.pop(ask.key, None)
        self._records[ask.key] = rec
        while len(self._records) > self.maxlen:
            self._records.popitem(last=False)
        return rec

    # -- writers (one line each in ExtenderService) ---------------------------------------------------
    def filtered(
        self,
        ask: PodAsk,
        passed: Collection[str],
        failed: dict[str, str],
        unresolvable: dict[str, str],
        placement: Placement | None,
    ) -> None:
        """A filter call: the nodes that passed and why the others failed (the dicts are kept as they are:
        the caller must not change them afterwards). `placement` counts only when exactly one node passed
        (the filter then steers the pod itself, kube-scheduler skips prioritize)."""
        with self._lock:
            rec = self._new(ask)
            rec.passed = len(passed)
            rec.candidates = rec.passed + len(failed) + len(unresolvable)
            rec.failed, rec.unresolvable = failed, unresolvable
            rec.placement = placement if rec.passed == 1 and placement is not None else None
            if rec.placement is not None and rec.placement.node not in passed:
                rec.placement = None  # an earlier call's placement, not this one's

    def scored(
        self,
        ask: PodAsk,
        names: Sequence[str],
        rows: IntArray,
        parts: ScoreParts,
        ints: IntArray,
        placement: Placement | None,
    ) -> None:
        """A prioritize call: score parts per feasible row (`names[row]` is the node; `names` only grows).
        `placement` counts only when some row was feasible (else it is an earlier call's)."""
        if not len(rows):
            placement = None
        with self._lock:
            rec = self._records.get(ask.key)
            if rec is None or rec.parts is not None or self.clock() - rec.at > MERGE_WINDOW_S:
                rec = self._new(ask)
                rec.candidates = rec.passed = len(rows)
            else:
                self.seq += 1
                rec.seq = self.seq
                self._records.move_to_end(ask.key)
            rec.names, rec.rows, rec.parts, rec.ints = names, rows, parts, ints
            rec.placement = placement

    # -- reader ---------------------------------------------------------------------------------------
    def entries(self, limit: int = 50, top: int = 10, nodes_per_reason: int = 8) -> list[dict[str, Any]]:
        """The newest `limit` decisions as plain dicts: the `top` best-scored nodes with their parts, and
        the filter reasons grouped (most common first) with up to `nodes_per_reason` node names each."""
        with self._lock:  # copies: the service may update a record while we read it
            recs = [replace(r) for r in list(self._records.values())[-limit:]] if limit > 0 else []
        with self._read_lock:
            return self._render(recs, top, nodes_per_reason)

    def _render(self, recs: list[_Record], top: int, nodes_per_reason: int) -> list[dict[str, Any]]:
        out = []
        for r in reversed(recs):
            key = (r.seq, top, nodes_per_reason)
            hit = self._rendered.get(r.key)
            if hit is None or hit[0] != key:  # each record is grouped and ranked once, not per reader
                hit = (key, _entry(r, top, nodes_per_reason))
                self._rendered[r.key] = hit
            out.append(dict(hit[1]))
        if len(self._rendered) > 2 * self.maxlen:
            live = set(self._records)  # a racy read is fine: it only decides what to forget
            self._rendered = {k: v for k, v in self._rendered.items() if k in live}
        return out


def _groups(failed: dict[str, str], unresolvable: dict[str, str], keep: int) -> list[dict[str, Any]]:
    out: dict[tuple[str, bool], dict[str, Any]] = {}
    for src, hard in ((failed, False), (unresolvable, True)):
        for node, reason in src.items():
            g = out.get((reason, hard))
            if g is None:
                g = out[(reason, hard)] = {"reason": reason, "unresolvable": hard, "count": 0, "nodes": []}
            g["count"] += 1
            if len(g["nodes"]) < keep:
                g["nodes"].append(node)
    return sorted(out.values(), key=lambda g: (-g["count"], g["reason"]))


def _entry(r: _Record, top: int, keep: int) -> dict[str, Any]:
    p = r.placement
    nodes: list[dict[str, Any]] = []
    if r.parts is not None and r.rows is not None and r.ints is not None and len(r.rows):
        total = np.asarray(r.parts.total)
        order = np.argsort(-total, kind="stable")[:top]  # ties: input order, as the service picks
        chosen = p.node if p is not None else None
        for j in order.tolist():
            node = r.names[int(r.rows[j])]
            nodes.append(
                {
                    "node": node,
                    "topology": round(float(r.parts.topology[j]), 1),
                    "resource": round(float(r.parts.resource[j]), 1),
                    "balance": round(float(r.parts.balance[j]), 1),
                    "total": round(float(total[j]), 1),
                    "score": int(r.ints[j]),
                    "chosen": node == chosen,
                }
            )
    if p is not None:
        outcome = "placed"
    elif r.passed == 0:
        outcome = "unschedulable"
    else:
        outcome = "filtered"  # several nodes passed; prioritize has not been called (yet)
    return {
        "seq": r.seq,
        "at": r.at,
        "key": r.key,
        "pod": f"{r.namespace}/{r.name}",
        "namespace": r.namespace,
        "name": r.name,
        "ask": r.ask,
        "outcome": outcome,
        "candidates": r.candidates,
        "passed": r.passed,
        "node": p.node if p is not None else None,
        "gpus": list(p.gpus) if p is not None else [],
        "score": p.score if p is not None else None,
        "scored": 0 if r.rows is None else len(r.rows),
        "nodes": nodes,
        "reasons": _groups(r.failed, r.unresolvable, keep),
    }

"""The extender's two verbs over parsed arguments: filter and prioritize (HTTP lives in routes.py).

Both modes share one path: nodeCacheCapable requests name nodes of our cluster view; full-Nodes requests
carry Node objects, which first refresh the same state (parsed once per resourceVersion).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from extender.arrays import IntArray
from extender.core import ScoringConfig, filter_nodes, score_parts, to_extender_scores
from extender.fragmentation import TypicalPodLearner
from extender.gang import gang_reason
from extender.inventory import PodAsk, parse_pod
from extender.view_adapter import NodeStateAdapter, node_name
from extender.wire import ExtenderArgs, filter_result

log = logging.getLogger("extender.decisions")

NEUTRAL_EXTENDER_SCORE = 5
MAX_REMEMBERED = 1000
UNKNOWN_NODE = "node is not in the extender's cluster view"


@dataclass
class Placement:
    """What prioritize steered the pod to (for the demo and logs). `gpus` are physical indices; for a GPU
    share (`gpu_milli` < 1000) that one index is what a device plugin must honour to pin the share there
    (annotation `gpu-autoscaler.io/gpu-index`, see docs/scheduling.md "GPU sharing")."""

    node: str
    gpus: list[int]
    score: int
    parts: dict[str, float] = field(default_factory=dict)
    gpu_milli: int = 1000


@dataclass
class _Request:
    ask: PodAsk
    names: list[str]  # input order (full mode: names of the readable Node objects)
    items: list[dict[str, Any]] | None  # full mode: the Node objects, aligned with `names`
    rows: IntArray  # rows of known names, aligned with `known`
    known: list[str]
    unknown: dict[str, str]  # name -> reason (not in our view, unreadable Node object)
    cache_mode: bool


class ExtenderService:
    def __init__(
        self, adapter: NodeStateAdapter, config: ScoringConfig, frag: TypicalPodLearner | None = None
    ) -> None:
        self.adapter = adapter
        self.config = config
        self.frag = frag
        self.last_placement: dict[str, Placement] = {}
        self._observed: set[str] = set()

    # -- shared -----------------------------------------------------------------------------------------
    def _prepare(self, args: ExtenderArgs, ask: PodAsk) -> _Request:
        ad = self.adapter
        if args.NodeNames is not None:
            rows, known, unknown = ad.rows_for(args.NodeNames)
            return _Request(
                ask, list(args.NodeNames), None, rows, known, {n: ad.unknown_reason(n) for n in unknown}, True
            )
        items = args.Nodes.items if args.Nodes is not None else []
        row_list, names, bad = ad.ensure_nodes(items)
        kept = [o for o in items if node_name(o) not in bad]
        return _Request(ask, names, kept, np.asarray(row_list, dtype=np.int64), names, bad, False)

    def _remember(self, key: str, placement: Placement) -> None:
        self.last_placement.pop(key, None)
        self.last_placement[key] = placement
        while len(self.last_placement) > MAX_REMEMBERED:
            self.last_placement.pop(next(iter(self.last_placement)))

    def _observe(self, ask: PodAsk) -> None:
        if self.frag is not None and ask.key not in self._observed:
            if len(self._observed) > 100_000:
                self._observed.clear()
            self._observed.add(ask.key)
            self.frag.observe(ask.req)

    # -- filter -------------------------------------------------------------------------------------------
    def filter(self, args: ExtenderArgs, ask: PodAsk | None = None) -> dict[str, Any]:
        ask = ask or parse_pod(args.Pod)
        if not ask.wants_gpu:  # pass-through: nothing of ours to check
            if args.NodeNames is not None:
                return filter_result(nodes=None, node_names=list(args.NodeNames), failed={}, unresolvable={})
            items = args.Nodes.items if args.Nodes is not None else []
            return filter_result(nodes=list(items), node_names=None, failed={}, unresolvable={})
        ad = self.adapter
        with ad.lock:
            ad.expire()
            ad.forget_assumed(ask.key)  # a retry must not compete with its own earlier choice
            self._observe(ask)
            req = self._prepare(args, ask)
            outcome = filter_nodes(ad.state, req.rows, ask, ad.topo)
            names = ad.state.names
            failed = {names[r]: msg for r, msg in outcome.failed.items()}
            unresolvable = {names[r]: msg for r, msg in outcome.unresolvable.items()}
            unresolvable.update(req.unknown)
            passed_rows = outcome.passed
            if ask.group and len(passed_rows):
                why = gang_reason(ad.state, ask, ad.group_status(ask))
                if why is not None:
                    failed.update({names[int(r)]: why for r in passed_rows})
                    passed_rows = passed_rows[:0]
            passed = {names[r] for r in passed_rows.tolist()}
            if len(passed) == 1:  # kube-scheduler skips prioritize then: this is the node
                only = int(passed_rows[0])
                gpus = ad.assume_pod(ask, only)
                self._remember(
                    ask.key, Placement(names[only], ad.gpu_phys(only, gpus), 10, gpu_milli=ask.req.gpu_milli)
                )
        log.info(
            "extender filter",
            extra={
                "pod": f"{ask.namespace}/{ask.name}",
                "gpus": ask.gpu_label,
                "candidates": len(req.names) + len(req.unknown) if not req.cache_mode else len(req.names),
                "passed": len(passed),
                "failed": failed if len(failed) <= 20 else len(failed),
                "unresolvable": unresolvable if len(unresolvable) <= 20 else len(unresolvable),
            },
        )
        if req.cache_mode:
            return filter_result(
                nodes=None,
                node_names=[n for n in req.names if n in passed],
                failed=failed,
                unresolvable=unresolvable,
            )
        assert req.items is not None
        kept = [o for o, n in zip(req.items, req.names, strict=True) if n in passed]
        return filter_result(nodes=kept, node_names=None, failed=failed, unresolvable=unresolvable)

    # -- prioritize -----------------------------------------------------------------------------------------
    def prioritize(self, args: ExtenderArgs, ask: PodAsk | None = None) -> list[dict[str, Any]]:
        ask = ask or parse_pod(args.Pod)
        if not ask.wants_gpu:
            return [{"Host": n, "Score": NEUTRAL_EXTENDER_SCORE} for n in self._input_names(args)]
        ad = self.adapter
        with ad.lock:
            ad.expire()
            ad.forget_assumed(ask.key)
            self._observe(ask)
            req = self._prepare(args, ask)
            outcome = filter_nodes(ad.state, req.rows, ask, ad.topo)
            feasible = outcome.passed
            parts = score_parts(ad.state, feasible, ask, self.config, ad.topo, self.frag)
            ints = to_extender_scores(parts.total)
            per_row = np.zeros(ad.state.n, dtype=np.int64)  # 0 for every row that is not feasible
            per_row[feasible] = ints
            names = ad.state.names
            if len(feasible):
                best = int(np.argmax(parts.total))  # first of the best: input order breaks ties
                row = int(feasible[best])
                gpus = ad.assume_pod(ask, row)
                self._remember(
                    ask.key,
                    Placement(
                        names[row],
                        ad.gpu_phys(row, gpus),
                        int(ints[best]),
                        {
                            "topology": float(parts.topology[best]),
                            "resource": float(parts.resource[best]),
                            "balance": float(parts.balance[best]),
                            "total": float(parts.total[best]),
                        },
                        gpu_milli=ask.req.gpu_milli,
                    ),
                )
            if log.isEnabledFor(logging.DEBUG):
                for j, r in enumerate(feasible):
                    log.debug(
                        "extender score",
                        extra={
                            "pod": f"{ask.namespace}/{ask.name}",
                            "node": names[int(r)],
                            "topology": round(float(parts.topology[j]), 2),
                            "resource": round(float(parts.resource[j]), 2),
                            "balance": round(float(parts.balance[j]), 2),
                            "weights": self.config.normalised_weights,
                            "policy": self.config.resource_policy,
                            "total": round(float(parts.total[j]), 2),
                            "score": int(ints[j]),
                        },
                    )
            row_of = ad.state.index
            if req.cache_mode and not req.unknown:  # NodeNames all known: rows aligned with the input
                return [
                    {"Host": n, "Score": s}
                    for n, s in zip(req.known, per_row[req.rows].tolist(), strict=True)
                ]
            scores = per_row.tolist()
        out = []
        for name in self._input_names(args):
            r = row_of.get(name)
            out.append({"Host": name, "Score": scores[r] if r is not None else 0})
        return out

    @staticmethod
    def _input_names(args: ExtenderArgs) -> list[str]:
        if args.NodeNames is not None:
            return list(args.NodeNames)
        items = args.Nodes.items if args.Nodes is not None else []
        return [node_name(o) for o in items]

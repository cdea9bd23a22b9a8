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
from extender.core import ScoringConfig, best_index, decisive_scores, filter_nodes, score_parts
from extender.decision_log import DecisionLog
from extender.fragmentation import TypicalPodLearner
from extender.gang import gang_reason
from extender.inventory import ANN_GPU_INDEX, InventoryError, PodAsk, parse_pod
from extender.view_adapter import NodeStateAdapter, node_name
from extender.wire import ExtenderArgs, ExtenderBindingArgs, filter_result

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
        self.decisions = DecisionLog()  # per-node parts and filter reasons of recent pods (the console)

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
        if self.frag is not None and ask.req.wants_gpu:
            self.frag.observe_pod(ask.key, ask.req)

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
            ad.yield_to_scheduler(req.rows, ask)
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
            passed_list = passed_rows.tolist()
            if len(passed_list) == 1:  # kube-scheduler skips prioritize then: this is the node
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
                "passed": len(passed_list),
                "failed": failed if len(failed) <= 20 else len(failed),
                "unresolvable": unresolvable if len(unresolvable) <= 20 else len(unresolvable),
            },
        )
        passed_names = [names[r] for r in passed_list]  # in input order
        self.decisions.filtered(ask, passed_names, failed, unresolvable, self.last_placement.get(ask.key))
        if req.cache_mode:  # rows pass in input order
            return filter_result(
                nodes=None,
                node_names=passed_names,
                failed=failed,
                unresolvable=unresolvable,
            )
        assert req.items is not None
        ok = set(passed_list)
        kept = [o for o, r in zip(req.items, req.rows.tolist(), strict=True) if r in ok]
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
            ad.yield_to_scheduler(req.rows, ask)
            outcome = filter_nodes(ad.state, req.rows, ask, ad.topo)
            feasible = outcome.passed
            parts = score_parts(ad.state, feasible, ask, self.config, ad.topo, self.frag)
            best = best_index(ad.state, feasible, parts.total, ad.topo) if len(feasible) else None
            ints = decisive_scores(parts.total, best)
            per_row = np.zeros(ad.state.n, dtype=np.int64)  # 0 for every row that is not feasible
            per_row[feasible] = ints
            names = ad.state.names
            if best is not None:
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
            self.decisions.scored(ask, names, feasible, parts, ints, self.last_placement.get(ask.key))
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

    # -- bind (binder mode) -------------------------------------------------------------------------------
    async def bind(self, args: ExtenderBindingArgs) -> dict[str, Any]:
        """Binder mode: record the GPUs we chose on the pod, then create the Binding ourselves.

        The annotation `gpu-autoscaler.io/gpu-index` (physical indices, comma-separated) is written before
        the Binding, so a device plugin that pins devices reads it at Allocate time; with several replicas,
        it is also how the others learn the exact GPUs from their watch. Any failure is the reply's `Error`
        (kube-scheduler then retries the pod) and the pod is no longer accounted on the node."""
        ad = self.adapter
        cluster = ad.view
        key = args.PodUID or f"{args.PodNamespace}/{args.PodName}"
        pod = cluster.get("Pod", args.PodName, args.PodNamespace) if cluster is not None else None
        try:
            ask = parse_pod(pod) if pod is not None else None
        except InventoryError:
            ask = None
        if ask is not None and not args.PodUID:
            key = ask.key
        if cluster is None:
            return {"Error": "extender has no cluster view to bind through"}
        try:
            gpus = ad.bind_pod(key, args.Node, ask)
        except KeyError:
            return {"Error": f"pod {args.PodNamespace}/{args.PodName} is unknown to the extender"}
        try:
            if gpus:
                value = ",".join(str(g) for g in gpus)
                patch = {"metadata": {"annotations": {ANN_GPU_INDEX: value}}}
                await cluster.patch("Pod", args.PodName, args.PodNamespace, patch)
            await cluster.bind(args.PodName, args.PodNamespace, args.Node, args.PodUID or None)
        except Exception as exc:  # the API refused: kube-scheduler retries the pod, we forget the binding
            ad.unbind_pod(key)
            log.warning(
                "extender bind failed",
                extra={"pod": f"{args.PodNamespace}/{args.PodName}", "node": args.Node, "error": str(exc)},
            )
            return {"Error": f"bind {args.PodNamespace}/{args.PodName} to {args.Node}: {exc}"}
        log.info(
            "extender bind",
            extra={"pod": f"{args.PodNamespace}/{args.PodName}", "node": args.Node, "gpus": gpus},
        )
        return {"Error": ""}

    @staticmethod
    def _input_names(args: ExtenderArgs) -> list[str]:
        if args.NodeNames is not None:
            return list(args.NodeNames)
        items = args.Nodes.items if args.Nodes is not None else []
        return [node_name(o) for o in items]

"""The admission decision, pure: review + namespace labels + offered profiles + usage -> response.

Rules (docs/webhook.md): only Pod CREATE in a namespace labelled `gpu-autoscaler.io/mig-rewrite=enabled`
(MIG) or `gpu-autoscaler.io/sharing=enabled` (GPU sharing); per container asking exactly one
`nvidia.com/gpu`; `gpu-autoscaler.io/mig=off` opts out of MIG, `=<profile>` pins,
`gpu-autoscaler.io/sharing=off` opts out of sharing; otherwise the workload's history picks the smallest
offered MIG profile that fits, and when none does (or the namespace only shares), a share of one GPU of the
sharing pool. Anything undecidable leaves the pod unchanged with a warning saying why. Never denied.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.gpu.mig import geometry_for, known_profile_names
from webhook.history import HistoryResult, WorkloadKey, workload_key
from webhook.mig import Decision, Usage, choose_profile, smaller
from webhook.models import AdmissionResponse, AdmissionReview
from webhook.patch import (
    ANN_GPU_MILLI,
    ANN_MIG,
    ANN_OPTIMIZED,
    ANN_ORIGINAL,
    ANN_REASON,
    ANN_SHARING,
    Op,
    build_patch,
    build_share_patch,
    encode,
    gpu_count,
)
from webhook.share import LABEL_STRATEGY, SHARING_LABEL, PoolOffer, ShareDecision, choose_share

OPT_IN_LABEL = "gpu-autoscaler.io/mig-rewrite"
PRODUCT_ANNOTATION = "gpu-autoscaler.io/gpu-product"
PRODUCT_LABEL = "nvidia.com/gpu.product"
WARNING_PREFIX = "gpu-autoscaler: "
MAX_WARNING = 119


@dataclass(frozen=True)
class Params:
    """Settings the decision depends on (plain values, taken from Settings once at start)."""

    threshold: float = 0.5
    headroom: float = 0.2
    #: the sharing pool's strategy: pods shared are steered to `nvidia.com/gpu.sharing-strategy=<it>`
    sharing_strategy: str = "time-slicing"


@dataclass
class Outcome:
    """Everything one review produced: the response, the ops behind it, and what to log and count."""

    response: AdmissionResponse
    ops: list[Op]
    #: metric label: mutated | pinned | shared | kept | no_fit | no_history | unknown_gpu | skipped | error
    outcome: str
    profile: str  # metric label: the profile applied, the share ("250m"), or "none"
    reasons: list[str]
    warnings: list[str]
    log: dict[str, Any] = field(default_factory=dict)
    #: the slices applied (one per rewritten container) and the share the history asked, whether or not
    #: a pool took it: the MIG and sharing controllers' recent demand
    slices: list[str] = field(default_factory=list)
    share: ShareDecision | None = None


def warn(text: str) -> str:
    """One warning line, prefixed and kept under the API server's 120-character advice."""
    line = WARNING_PREFIX + text
    return line if len(line) <= MAX_WARNING else line[: MAX_WARNING - 1] + "…"


def _pod(review: AdmissionReview) -> dict[str, Any]:
    return review.request.object or {}


def _annotations(pod: Mapping[str, Any]) -> Mapping[str, str]:
    return (pod.get("metadata") or {}).get("annotations") or {}


def _gpu_containers(pod: Mapping[str, Any]) -> list[tuple[int, str, int]]:
    """(index, name, GPUs) of each container asking whole GPUs."""
    out = []
    for i, c in enumerate((pod.get("spec") or {}).get("containers") or []):
        n = gpu_count(c)
        if n is not None:
            out.append((i, str(c.get("name", i)), n))
    return out


def _opted_in(ns_labels: Mapping[str, str] | None, pod: Mapping[str, Any]) -> tuple[bool, bool]:
    """(MIG rewrite on, sharing rewrite on) for this pod in this namespace."""
    if ns_labels is None:
        return False, False
    ann = _annotations(pod)
    mig = ns_labels.get(OPT_IN_LABEL) == "enabled" and ann.get(ANN_MIG, "").strip().lower() != "off"
    share = ns_labels.get(SHARING_LABEL) == "enabled" and ann.get(ANN_SHARING, "").strip().lower() != "off"
    return mig, share and ANN_GPU_MILLI not in ann


def is_candidate(review: AdmissionReview, ns_labels: Mapping[str, str] | None) -> bool:
    """Pod CREATE, opted-in namespace, a container asking one GPU, not opted out."""
    req = review.request
    if req.kind.kind != "Pod" or req.operation != "CREATE" or req.subResource:
        return False
    pod = _pod(review)
    if ANN_GPU_MILLI in _annotations(pod) or not any(_opted_in(ns_labels, pod)):
        return False
    return any(n == 1 for _, _, n in _gpu_containers(pod))


def history_key(review: AdmissionReview, ns_labels: Mapping[str, str] | None) -> WorkloadKey | None:
    """The workload whose history the decision needs; None when no history is needed (or none exists)."""
    if not is_candidate(review, ns_labels):
        return None
    pod = _pod(review)
    pin = _annotations(pod).get(ANN_MIG, "").strip()
    if pin and pin.lower() != "off" and _opted_in(ns_labels, pod)[0]:
        return None  # pinned: no history needed
    namespace = review.request.namespace or str((pod.get("metadata") or {}).get("namespace") or "")
    return workload_key(pod, namespace)


def _annotated_products(pod: Mapping[str, Any]) -> list[str]:
    return [p.strip() for p in _annotations(pod).get(PRODUCT_ANNOTATION, "").split(",") if p.strip()]


def product_filter(pod: Mapping[str, Any]) -> list[str]:
    """Product substrings the pod accepts (annotation gpu-product, or nodeSelector gpu.product); [] = any."""
    wanted = _annotated_products(pod)
    selector = ((pod.get("spec") or {}).get("nodeSelector") or {}).get(PRODUCT_LABEL)
    if selector:
        wanted.append(str(selector))
    return wanted


def _accepts(product: str, wanted: list[str]) -> bool:
    if not wanted:
        return True
    norm = product.upper().replace("-", " ")
    return any(w.upper().replace("-", " ") in norm for w in wanted)


def _respond(
    review: AdmissionReview,
    ops: list[Op],
    outcome: str,
    profile: str,
    reasons: list[str],
    warnings: list[str],
    log: dict[str, Any],
) -> Outcome:
    response = AdmissionResponse(uid=review.request.uid, allowed=True)
    if ops:
        response.patchType = "JSONPatch"
        response.patch = encode(ops)
    if warnings:
        response.warnings = warnings
    response.auditAnnotations = {"mig-rewrite": f"{outcome}:{profile}"}
    log = {"outcome": outcome, "profile": profile, "reasons": reasons, **log}
    return Outcome(response, ops, outcome, profile, reasons, warnings, log)


def decide(
    review: AdmissionReview,
    ns_labels: Mapping[str, str] | None,
    offers: Mapping[str, frozenset[str]],
    history: HistoryResult | None,
    params: Params = Params(),
    pool: Sequence[PoolOffer] = (),
) -> Outcome:
    """The whole decision for one review. Pure: same inputs, same answer. `offers`: MIG profiles per GPU
    product; `pool`: what the nodes sharing GPUs offer."""
    req = review.request
    pod = _pod(review)
    namespace = req.namespace or str((pod.get("metadata") or {}).get("namespace") or "")
    log: dict[str, Any] = {"uid": req.uid, "namespace": namespace, "dry_run": bool(req.dryRun)}
    if req.kind.kind != "Pod" or req.operation != "CREATE" or req.subResource:
        what = f"{req.kind.kind} {req.operation}{'/' + req.subResource if req.subResource else ''}"
        return _respond(review, [], "skipped", "none", [f"not a Pod CREATE ({what})"], [], log)
    meta = pod.get("metadata") or {}
    log["pod"] = meta.get("name") or (str(meta.get("generateName") or "") + "*")
    gpus = _gpu_containers(pod)
    if not gpus:
        return _respond(review, [], "skipped", "none", ["no container asks nvidia.com/gpu"], [], log)
    if ns_labels is None:
        why = f"namespace {namespace} is unknown to the webhook; pod left unchanged"
        return _respond(review, [], "error", "none", [why], [warn(why)], log)
    if ns_labels.get(OPT_IN_LABEL) != "enabled" and ns_labels.get(SHARING_LABEL) != "enabled":
        return _respond(review, [], "skipped", "none", [f"namespace {namespace} not opted in"], [], log)
    if ANN_GPU_MILLI in _annotations(pod):
        why = f"already asks a share of a GPU ({ANN_GPU_MILLI})"
        return _respond(review, [], "skipped", "none", [why], [], log)
    mig_on, share_on = _opted_in(ns_labels, pod)
    pin = _annotations(pod).get(ANN_MIG, "").strip()
    if not mig_on and not share_on:
        opted_out = f"{ANN_MIG}=off" if pin.lower() == "off" else f"{ANN_SHARING}=off"
        return _respond(review, [], "skipped", "none", [opted_out], [], log)

    reasons: list[str] = []
    warnings: list[str] = []
    singles = [(i, name) for i, name, n in gpus if n == 1]
    for _, name, n in gpus:
        if n > 1:
            why = f"container {name} asks {n} GPUs: multi-GPU requests are never sliced"
            reasons.append(why)
            warnings.append(warn(why))
    if not singles:
        return _respond(review, [], "skipped", "none", reasons, warnings, log)

    if pin and pin.lower() != "off":
        if not mig_on:
            why = f"{ANN_MIG}={pin} pins a MIG slice, but namespace {namespace} has no MIG rewrite"
            return _respond(review, [], "skipped", "none", [*reasons, why], warnings, log)
        return _pinned(review, pod, pin, offers, singles, reasons, warnings, log)

    # history-driven choice
    if history is None or history.status in ("disabled", "timeout", "error"):
        note = history.note if history is not None and history.note else "no workload to key history on"
        if history is None and workload_key(pod, namespace) is not None:
            note = "history not looked up"
        why = f"no usage history ({note}); pod left unchanged"
        status = history.status if history is not None else "none"
        outcome = "error" if status == "error" else "no_history"
        log["history"] = status
        return _respond(review, [], outcome, "none", [*reasons, why], [*warnings, warn(why)], log)
    log["history"] = history.status
    if mig_on and not offers and not share_on:
        why = "no node offers MIG slices; pod left unchanged"
        return _respond(review, [], "no_fit", "none", [*reasons, why], [*warnings, warn(why)], log)

    decisions = _mig_decisions(pod, singles, history, offers, params) if mig_on and offers else {}
    if mig_on and not offers:
        reasons.append("no node offers MIG slices")
    rewrites = {i: decisions[name].profile for i, name in singles if name in decisions}
    for name, d in decisions.items():
        line = f"container {name}: " + (f"-> {d.profile}: {d.reason}" if d.profile else d.reason)
        reasons.append(line)
        if d.profile or not share_on:
            warnings.append(warn(line if d.profile else line + "; left unchanged"))
    log["decisions"] = {
        n: {"profile": d.profile, "outcome": d.outcome, **d.details} for n, d in decisions.items()
    }
    chosen = {i: p for i, p in rewrites.items() if p is not None}
    if chosen:
        text = "; ".join(f"{n}: {d.profile} ({d.reason})" for n, d in decisions.items() if d.profile)
        ops = build_patch(pod, chosen, _result_annotations(text))
        applied = sorted(set(chosen.values()))
        out = _respond(review, ops, "mutated", ",".join(applied), reasons, warnings, log)
        out.slices = [chosen[i] for i in sorted(chosen)]
        return out
    outcomes = [d.outcome for d in decisions.values()]
    outcome = next((o for o in ("kept", "no_fit", "unknown_gpu", "no_history") if o in outcomes), "no_fit")
    if share_on and "kept" not in outcomes:
        return _share(review, pod, gpus, history, pool, params, reasons, warnings, log, outcome)
    return _respond(review, [], outcome if outcomes else "no_fit", "none", reasons, warnings, log)


def _pinned(
    review: AdmissionReview,
    pod: Mapping[str, Any],
    pin: str,
    offers: Mapping[str, frozenset[str]],
    singles: list[tuple[int, str]],
    reasons: list[str],
    warnings: list[str],
    log: dict[str, Any],
) -> Outcome:
    offered_any = frozenset().union(*offers.values()) if offers else frozenset()
    if pin not in known_profile_names():
        why = f"{ANN_MIG}={pin} is not a known MIG profile; pod left unchanged"
        return _respond(review, [], "error", "none", [*reasons, why], [*warnings, warn(why)], log)
    if pin not in offered_any:
        warnings.append(warn(f"pinned profile {pin} is offered by no node yet; the pod may stay Pending"))
    pinned = {i: pin for i, _ in singles}
    why = f"pinned by {ANN_MIG}={pin}"
    ops = build_patch(pod, pinned, _result_annotations(why))
    reasons.append(why)
    warnings.append(warn(f"nvidia.com/gpu: 1 -> nvidia.com/mig-{pin} ({why})"))
    return _respond(review, ops, "pinned", pin, reasons, warnings, log)


def _usage_of(history: HistoryResult, name: str, alone: bool) -> Usage | None:
    usage = history.usage.get(name)
    if usage is None and len(history.usage) == 1 and alone:
        usage = next(iter(history.usage.values()))  # series without a container label
    return usage


def _mig_decisions(
    pod: Mapping[str, Any],
    singles: list[tuple[int, str]],
    history: HistoryResult,
    offers: Mapping[str, frozenset[str]],
    params: Params,
) -> dict[str, Decision]:
    """Per container asking one GPU: the smallest offered MIG profile its history fits, or why none."""
    wanted = product_filter(pod)
    decisions: dict[str, Decision] = {}
    for _, name in singles:
        usage = _usage_of(history, name, len(singles) == 1)
        if usage is None:
            decisions[name] = Decision(None, "no usage history for this workload", "no_history")
            continue
        best: Decision | None = None
        unknown: list[str] = []
        for product, profiles in sorted(offers.items()):
            if not _accepts(product, wanted):
                continue
            if geometry_for(product) is None:
                unknown.append(product or "?")
                continue
            d = choose_profile(usage, product, profiles, params.threshold, params.headroom)
            best = d if best is None else smaller(best, d)
        if best is None:
            what = ", ".join(unknown) if unknown else "none matching the pod's GPU product"
            best = Decision(None, f"unknown GPU type ({what})", "unknown_gpu")
        decisions[name] = best
    return decisions


def _share(
    review: AdmissionReview,
    pod: Mapping[str, Any],
    gpus: list[tuple[int, str, int]],
    history: HistoryResult,
    pool: Sequence[PoolOffer],
    params: Params,
    reasons: list[str],
    warnings: list[str],
    log: dict[str, Any],
    fallback: str,
) -> Outcome:
    """The sharing rewrite: one container asking one GPU whose history fits a share of a pool GPU."""
    if len(gpus) != 1 or gpus[0][2] != 1:
        why = "a share is one GPU for the whole pod: pods with several GPU containers are not shared"
        return _respond(review, [], fallback, "none", [*reasons, why], [*warnings, warn(why)], log)
    index, name, _ = gpus[0]
    usage = _usage_of(history, name, True)
    if usage is None:
        why = f"container {name}: no usage history for this workload; left unchanged"
        return _respond(review, [], "no_history", "none", [*reasons, why], [*warnings, warn(why)], log)
    selector = ((pod.get("spec") or {}).get("nodeSelector") or {}).get(PRODUCT_LABEL)
    d = choose_share(usage, pool, _annotated_products(pod), selector, params.threshold, params.headroom)
    log["share"] = {"outcome": d.outcome, "milli": d.milli, "wanted": d.wanted, **d.details}
    if d.milli is None or d.offer is None:
        why = f"container {name}: no GPU share ({d.reason}); left unchanged"
        out = _respond(review, [], d.outcome, "none", [*reasons, why], [*warnings, warn(why)], log)
        out.share = d
        return out
    text = f"{name}: {d.milli}m of one GPU ({d.reason})"
    annotations = {**_result_annotations(text), ANN_GPU_MILLI: str(d.milli)}
    selector_wanted = {LABEL_STRATEGY: d.offer.strategy}
    ops = build_share_patch(pod, index, d.offer.resource, selector_wanted, annotations)
    line = f"container {name}: -> {d.milli}m of a shared {d.offer.product} ({d.reason})"
    out = _respond(review, ops, "shared", f"{d.milli}m", [*reasons, line], [*warnings, warn(line)], log)
    out.share = d
    return out


def _result_annotations(reason: str) -> dict[str, str]:
    return {ANN_OPTIMIZED: "true", ANN_ORIGINAL: "1", ANN_REASON: reason[:500]}


def fail_open(uid: str, why: str) -> AdmissionResponse:
    """The answer when deciding itself failed: allow unchanged, say why."""
    return AdmissionResponse(uid=uid, allowed=True, warnings=[warn(why)])

"""AdmissionReview v1 wire models (admission.k8s.io/v1), lenient where Kubernetes adds fields.

Unknown fields are kept (`extra="allow"`) so a newer API server never breaks parsing. The pod itself stays a
plain dict (patch paths index into it); `PodShape` only checks the parts the webhook reads, so a malformed
pod gets a 400 naming the field instead of a crash deeper down.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

API_VERSION = "admission.k8s.io/v1"


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class GroupVersionKind(_Lenient):
    group: str = ""
    version: str = ""
    kind: str


class GroupVersionResource(_Lenient):
    group: str = ""
    version: str = ""
    resource: str = ""


class AdmissionRequest(_Lenient):
    uid: str = Field(min_length=1)
    kind: GroupVersionKind
    resource: GroupVersionResource | None = None
    subResource: str | None = None
    name: str = ""
    namespace: str = ""
    operation: str
    userInfo: dict[str, Any] | None = None
    object: dict[str, Any] | None = None
    oldObject: dict[str, Any] | None = None
    dryRun: StrictBool | None = False  # a bool on the wire; 0 or "yes" is not one
    options: dict[str, Any] | None = None


class AdmissionReview(_Lenient):
    apiVersion: Literal["admission.k8s.io/v1"]
    kind: Literal["AdmissionReview"]
    request: AdmissionRequest


class AdmissionResponse(_Lenient):
    uid: str
    allowed: bool = True
    patchType: Literal["JSONPatch"] | None = None
    patch: str | None = None  # base64 of the RFC 6902 JSON Patch
    warnings: list[str] | None = None
    auditAnnotations: dict[str, str] | None = None
    status: dict[str, Any] | None = None


class _Resources(_Lenient):
    limits: dict[str, str | int | float] | None = None
    requests: dict[str, str | int | float] | None = None


class _Container(_Lenient):
    name: str
    resources: _Resources | None = None


class _PodSpec(_Lenient):
    containers: list[_Container] = Field(min_length=1)
    initContainers: list[_Container] | None = None
    nodeSelector: dict[str, str] | None = None


class _ObjectMeta(_Lenient):
    name: str | None = None
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    ownerReferences: list[dict[str, Any]] | None = None


class PodShape(_Lenient):
    """The parts of a Pod the webhook reads; checked, then the raw dict is used."""

    metadata: _ObjectMeta = Field(default_factory=_ObjectMeta)
    spec: _PodSpec


class ReviewError(ValueError):
    """A malformed AdmissionReview: `field` is the dotted path at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _first_error(exc: ValidationError, prefix: str = "") -> ReviewError:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()))
    where = ".".join(p for p in (prefix, loc) if p) or "body"
    return ReviewError(where, str(err.get("msg", "invalid")))


def parse_review(raw: Any) -> AdmissionReview:
    """Validate a decoded JSON body as an AdmissionReview v1; pods are shape-checked too."""
    if not isinstance(raw, dict):
        raise ReviewError("body", f"expected a JSON object, got {type(raw).__name__}")
    try:
        review = AdmissionReview.model_validate(raw)
    except ValidationError as exc:
        raise _first_error(exc) from exc
    req = review.request
    if req.kind.kind == "Pod" and req.operation in ("CREATE", "UPDATE"):
        if req.object is None:
            raise ReviewError("request.object", "a Pod review must carry the pod")
        try:
            PodShape.model_validate(req.object)
        except ValidationError as exc:
            raise _first_error(exc, "request.object") from exc
    return review


class AdmissionReviewOut(BaseModel):
    """What /mutate answers: the review with `response` (uid echoed, allowed, optional JSONPatch)."""

    apiVersion: Literal["admission.k8s.io/v1"]
    kind: Literal["AdmissionReview"]
    response: AdmissionResponse

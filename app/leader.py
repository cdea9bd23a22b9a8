"""Who runs the background loops: every replica serves requests, only the leader acts on the cluster.

Loops ask `ctx.leadership.is_leader` before each cycle (`PeriodicLoop(gate=...)`). A single process (demo,
snapshot, tests) is always the leader (`AlwaysLeader`). Replicas against a live cluster elect one with a
`coordination.k8s.io/v1` Lease (`LeaseElector`), the same record and rules as client-go's leaderelection
package, so `kubectl get lease` reads the same and mixed tooling interoperates:

- the holder renews `spec.renewTime` every `retry_period`; the others poll as often;
- a candidate takes the Lease only once it has seen the record unchanged for `leaseDurationSeconds` (time
  measured on its own monotonic clock from when it *observed* the change, never by comparing the holder's
  timestamps with its own wall clock, so clock skew between nodes cannot shorten a lease);
- every write is a PUT carrying the resourceVersion it read: of two candidates, the second gets `Conflict`;
- the holder stops acting when it could not renew for `renew_deadline` (< lease duration), so it is no
  longer the leader by its own account before anyone else may become one;
- on shutdown the holder releases the Lease (empty holder), and a standby takes over at its next poll.

Why not the official client's `leaderelection` module: it works only through its own configuration and
thread; this elector goes through the cluster view (`read`/`create`/`replace`), so the tests run two electors
against the snapshot view without an apiserver, with an injected clock.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from prometheus_client import Gauge

from app.cluster.base import ApiError, ClusterView, Conflict, Obj
from app.metrics import REGISTRY
from app.tasks import cancel_and_wait

log = logging.getLogger(__name__)

LEADER = Gauge(
    "gpu_autoscaler_leader",
    "1 while this replica holds the leader Lease of the component (runs its background loops), else 0",
    ["component"],
    registry=REGISTRY,
)

#: called with True when this process becomes the leader, False when it stops being one
LeadershipListener = Callable[[bool], None]


class Leadership(Protocol):
    @property
    def is_leader(self) -> bool:
        """True while this process may act (write to the cluster from a background loop)."""
        ...

    @property
    def identity(self) -> str: ...

    def add_listener(self, listener: LeadershipListener) -> None:
        """Called on every change of `is_leader` (e.g. to drop metrics only the leader exports)."""
        ...

    def describe(self) -> dict[str, Any]: ...


class AlwaysLeader:
    """One process, no election: the leader for as long as it runs."""

    def __init__(self, identity: str = "single") -> None:
        self._identity = identity

    @property
    def is_leader(self) -> bool:
        return True

    @property
    def identity(self) -> str:
        return self._identity

    def add_listener(self, listener: LeadershipListener) -> None:
        """Leadership never changes: nothing to call."""

    def describe(self) -> dict[str, Any]:
        return {"leader": True, "identity": self._identity, "election": "off"}


@dataclass(frozen=True)
class LeaseTiming:
    """Lease timing, in seconds. Worst-case failover after the holder dies without releasing is about
    `lease_duration + 1.2 * retry_period` (a standby sees the last renewal at most one poll late, then
    waits the lease out); a graceful shutdown releases the Lease and hands over within one poll."""

    lease_duration: float = 10.0
    renew_deadline: float = 7.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        # client-go's rules (JitterFactor 1.2): each is needed for the no-two-leaders argument above
        if not self.lease_duration > self.renew_deadline:
            raise ValueError("leader election: lease duration must be greater than the renew deadline")
        if not self.renew_deadline > 1.2 * self.retry_period:
            raise ValueError("leader election: renew deadline must be greater than 1.2 x the retry period")
        if self.retry_period <= 0:
            raise ValueError("leader election: retry period must be > 0")


def micro_time(epoch_s: float) -> str:
    """Kubernetes MicroTime (RFC 3339, microseconds, UTC), as `spec.renewTime` wants."""
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def default_identity() -> str:
    """Hostname (the pod name in a pod) and a random suffix, so a restarted process is a new candidate."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def next_spec(
    spec: Obj | None, me: str, now_epoch_s: float, lease_valid: bool, lease_duration_s: float
) -> Obj | None:
    """The Lease spec to write for `me` to hold (acquire or renew) the lease, or None while another
    holder's lease is still valid. `spec` is the current one (None: no Lease yet)."""
    spec = spec or {}
    holder = str(spec.get("holderIdentity") or "")
    if holder and holder != me and lease_valid:
        return None
    now = micro_time(now_epoch_s)
    transitions = int(spec.get("leaseTransitions") or 0)
    renewing = holder == me
    return {
        "holderIdentity": me,
        "leaseDurationSeconds": max(1, round(lease_duration_s)),
        "acquireTime": (spec.get("acquireTime") or now) if renewing else now,
        "renewTime": now,
        # counted on every acquisition (as client-go does), not on renewals
        "leaseTransitions": transitions if renewing else transitions + (1 if spec else 0),
    }


class LeaseElector:
    """Leader election on one Lease through the cluster view; `start()` runs it in the background."""

    def __init__(
        self,
        cluster: ClusterView,
        *,
        name: str,
        namespace: str,
        identity: str | None = None,
        component: str = "controllers",
        timing: LeaseTiming | None = None,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.cluster = cluster
        self.name = name
        self.namespace = namespace
        self.component = component
        self.lease_ref = f"{namespace}/{name}"
        self.timing = timing or LeaseTiming()
        self._identity = identity or default_identity()
        self._wall = wall
        self._monotonic = monotonic
        self._sleep = sleep
        self._listeners: list[LeadershipListener] = []
        #: monotonic time of our last successful acquire/renew (None: not holding)
        self._renewed_at: float | None = None
        self._was_leader = False
        #: the last spec seen, and when (monotonic) it was first seen as it is
        self._observed: Obj | None = None
        self._observed_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self.transitions_seen = 0
        self.last_error = ""
        LEADER.labels(component).set(0)

    # -- Leadership protocol -----------------------------------------------------------------------
    @property
    def identity(self) -> str:
        return self._identity

    @property
    def is_leader(self) -> bool:
        """Holding the Lease and renewed within the renew deadline (checked on every call, so a loop gated
        on this stops acting in time even if the election task itself is stuck)."""
        at = self._renewed_at
        return at is not None and self._monotonic() - at < self.timing.renew_deadline

    @property
    def holder(self) -> str:
        """The holder as last observed ('' when released or unknown)."""
        return str((self._observed or {}).get("holderIdentity") or "")

    def add_listener(self, listener: LeadershipListener) -> None:
        self._listeners.append(listener)

    def describe(self) -> dict[str, Any]:
        return {
            "leader": self.is_leader,
            "identity": self._identity,
            "election": "lease",
            "lease": self.lease_ref,
            "holder": self.holder,
            "component": self.component,
            "lease_duration_s": self.timing.lease_duration,
            "renew_deadline_s": self.timing.renew_deadline,
            "retry_period_s": self.timing.retry_period,
            "last_error": self.last_error,
        }

    # -- one attempt -------------------------------------------------------------------------------
    def _observe(self, spec: Obj | None) -> None:
        # the holder's timestamps only tell "it changed": validity runs on our own clock from then on
        if spec != self._observed:
            self._observed = spec
            self._observed_at = self._monotonic()

    def _lease_valid(self) -> bool:
        spec = self._observed or {}
        duration = float(spec.get("leaseDurationSeconds") or self.timing.lease_duration)
        return self._monotonic() < self._observed_at + duration

    async def try_acquire_or_renew(self) -> bool:
        """GET the Lease; create it, renew it or take it over when allowed. True when we hold it now."""
        try:
            lease = await self.cluster.read("Lease", self.name, self.namespace)
            if lease is None:
                spec = next_spec(None, self._identity, self._wall(), False, self.timing.lease_duration)
                obj: Obj = {"metadata": {"name": self.name, "namespace": self.namespace}, "spec": spec}
                created = await self.cluster.create("Lease", obj)
                self._observe(created.get("spec"))
                return self._held()
            current = lease.get("spec") or {}
            self._observe(current)
            spec = next_spec(
                current, self._identity, self._wall(), self._lease_valid(), self.timing.lease_duration
            )
            if spec is None:
                return False
            replaced = await self.cluster.replace("Lease", {**lease, "spec": spec})
            self._observe(replaced.get("spec"))
            return self._held()
        except Conflict as exc:
            # another candidate wrote first (stale resourceVersion, or it created the Lease): not ours
            self.last_error = str(exc)
            return False
        except (ApiError, OSError, TimeoutError) as exc:
            self.last_error = str(exc)
            log.warning(
                "leader election: lease request failed",
                extra={"lease": self.lease_ref, "identity": self._identity, "error": str(exc)},
            )
            return False

    def _held(self) -> bool:
        self._renewed_at = self._monotonic()
        self.last_error = ""
        return True

    def _update(self, held: bool) -> None:
        """After an attempt: a failed one drops nothing until the renew deadline passes (is_leader)."""
        if not held and self._renewed_at is not None and not self.is_leader:
            self._renewed_at = None
        leading = self.is_leader
        if leading == self._was_leader:
            return
        self._was_leader = leading
        LEADER.labels(self.component).set(1 if leading else 0)
        if leading:
            self.transitions_seen += 1
            log.info(
                "leader election: became the leader",
                extra={"lease": self.lease_ref, "identity": self._identity},
            )
        else:
            log.warning(
                "leader election: stopped leading",
                extra={
                    "lease": self.lease_ref,
                    "identity": self._identity,
                    "holder": self.holder,
                    "error": self.last_error,
                },
            )
        for listener in list(self._listeners):
            try:
                listener(leading)
            except Exception:
                log.exception("leadership listener failed")

    async def step(self) -> bool:
        """One attempt (bounded by the renew deadline) and its consequences; returns is_leader."""
        try:
            held = await asyncio.wait_for(self.try_acquire_or_renew(), timeout=self.timing.renew_deadline)
        except TimeoutError:
            self.last_error = f"lease request took over {self.timing.renew_deadline}s"
            held = False
        self._update(held)
        return self.is_leader

    def _next_wait(self) -> float:
        """Poll every retry period (+ up to 20 % jitter for candidates, so they do not move in step); a
        candidate wakes right when the observed lease runs out instead of up to a period later."""
        retry = self.timing.retry_period
        if self.is_leader:
            return retry
        wait = retry * random.uniform(1.0, 1.2)
        if self.holder:
            duration = float((self._observed or {}).get("leaseDurationSeconds") or self.timing.lease_duration)
            expires_in = self._observed_at + duration - self._monotonic()
            if 0 < expires_in < wait:
                wait = expires_in + 0.01
        return wait

    # -- background task ---------------------------------------------------------------------------
    async def run(self) -> None:
        log.info(
            "leader election started",
            extra={"lease": self.lease_ref, "identity": self._identity},
        )
        while True:
            await self.step()
            await self._sleep(self._next_wait())

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run(), name=f"leader:{self.name}")

    async def stop(self, release: bool = True) -> None:
        """Stop campaigning; when holding the Lease and `release`, hand it back so a standby takes over at
        its next poll instead of waiting for the lease to run out."""
        task, self._task = self._task, None
        await cancel_and_wait(task)
        if release and self.is_leader:
            await self._release()
        self._renewed_at = None
        self._update(False)

    async def _release(self) -> None:
        try:
            lease = await self.cluster.read("Lease", self.name, self.namespace)
            spec = (lease or {}).get("spec") or {}
            if lease is None or spec.get("holderIdentity") != self._identity:
                return
            now = micro_time(self._wall())
            released = {
                "holderIdentity": "",
                "leaseDurationSeconds": 1,
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": int(spec.get("leaseTransitions") or 0),
            }
            await asyncio.wait_for(
                self.cluster.replace("Lease", {**lease, "spec": released}), self.timing.retry_period
            )
            log.info(
                "leader election: released the lease",
                extra={"lease": self.lease_ref, "identity": self._identity},
            )
        except (ApiError, OSError, TimeoutError) as exc:
            log.warning("leader election: release failed", extra={"error": str(exc)})

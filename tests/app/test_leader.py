"""Leader election on a coordination.k8s.io Lease through the cluster view (snapshot view, injected clock)."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.cluster.base import Obj
from app.cluster.snapshot import SnapshotCluster
from app.leader import AlwaysLeader, LeaseElector, LeaseTiming, micro_time, next_spec
from app.loops import PeriodicLoop
from app.main import build_leadership, create_app
from app.metrics import REGISTRY
from app.settings import Settings, SettingsError, load_settings

NS, NAME = "gpu-autoscaler", "gpu-autoscaler"
MICRO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
TIMING = LeaseTiming(lease_duration=10.0, renew_deadline=7.0, retry_period=2.0)


class Clock:
    """One fake time for wall and monotonic clocks of every elector."""

    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t


def elector(cluster: SnapshotCluster, clock: Clock, identity: str, **kw: Any) -> LeaseElector:
    return LeaseElector(
        cluster,
        name=NAME,
        namespace=NS,
        identity=identity,
        timing=kw.pop("timing", TIMING),
        wall=clock,
        monotonic=clock,
        component=kw.pop("component", "test-" + identity),
        **kw,
    )


def lease(cluster: SnapshotCluster) -> Obj:
    return cluster.others["Lease"][(NS, NAME)]


def gauge(component: str) -> float | None:
    return REGISTRY.get_sample_value("gpu_autoscaler_leader", {"component": component})


async def test_holder_stops_renewing_and_the_other_takes_over_within_the_lease() -> None:
    cluster, clock = SnapshotCluster(), Clock()
    a, b = elector(cluster, clock, "a"), elector(cluster, clock, "b")
    assert await a.step() is True and await b.step() is False
    spec = lease(cluster)["spec"]
    assert spec["holderIdentity"] == "a" and spec["leaseDurationSeconds"] == 10
    assert (
        spec["leaseTransitions"] == 0 and MICRO.match(spec["renewTime"]) and MICRO.match(spec["acquireTime"])
    )
    first_acquire = spec["acquireTime"]

    # both poll every retry period for a while: a renews, b stays a standby
    for _ in range(5):
        clock.t += TIMING.retry_period
        assert await a.step() is True and await b.step() is False
    assert lease(cluster)["spec"]["acquireTime"] == first_acquire  # renewals keep the acquire time
    assert gauge("test-a") == 1 and gauge("test-b") == 0
    last_renewal = clock.t

    # a hangs (stops renewing but is still running): b polls every 2 s until it holds the lease
    took_over = None
    while clock.t - last_renewal < 30:
        clock.t += TIMING.retry_period
        b_leads = await b.step()
        assert not (a.is_leader and b_leads), f"two leaders at +{clock.t - last_renewal}s"
        if b.is_leader:
            took_over = clock.t - last_renewal
            break
    assert took_over is not None
    # never before the lease ran out, at most one poll after
    assert TIMING.lease_duration <= took_over <= TIMING.lease_duration + TIMING.retry_period
    assert took_over < 15
    # a had stopped acting by its renew deadline, before b could take over
    assert not a.is_leader
    spec = lease(cluster)["spec"]
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1
    assert spec["acquireTime"] == micro_time(clock.t)

    # a comes back: it sees b's valid lease and stays a standby
    assert await a.step() is False and a.holder == "b"
    assert gauge("test-a") == 0 and gauge("test-b") == 1


async def test_a_graceful_stop_hands_over_at_the_next_poll() -> None:
    cluster, clock = SnapshotCluster(), Clock()
    a, b = elector(cluster, clock, "a"), elector(cluster, clock, "b")
    await a.step()
    await b.step()
    await a.stop(release=True)
    assert lease(cluster)["spec"]["holderIdentity"] == "" and not a.is_leader
    clock.t += 0.1  # far inside the old lease: a released lease is free at once
    assert await b.step() is True
    assert lease(cluster)["spec"]["leaseTransitions"] == 1


async def test_stale_resource_version_loses_the_race() -> None:
    """Both candidates read the expired lease; the one that writes second gets Conflict and is not leader."""
    cluster, clock = SnapshotCluster(), Clock()
    old = elector(cluster, clock, "old")
    await old.step()
    clock.t += 60
    a, b = elector(cluster, clock, "a"), elector(cluster, clock, "b")
    for e in (a, b):  # each has seen the record once, long ago: expired for both
        e._observe(lease(cluster)["spec"])
        e._observed_at -= 60

    read = cluster.read

    async def read_then_let_b_win(kind: str, name: str, namespace: str = "") -> Obj | None:
        obj = await read(kind, name, namespace)
        cluster.read = read  # type: ignore[method-assign]
        assert await b.step() is True  # b writes between a's read and a's write
        return obj

    cluster.read = read_then_let_b_win  # type: ignore[method-assign]
    assert await a.step() is False
    assert "resourceVersion" in a.last_error
    assert lease(cluster)["spec"]["holderIdentity"] == "b"


async def test_leader_that_cannot_renew_steps_down_at_the_renew_deadline() -> None:
    cluster, clock = SnapshotCluster(), Clock()
    a = elector(cluster, clock, "a")
    lost: list[bool] = []
    a.add_listener(lost.append)
    assert await a.step() is True and lost == [True]

    async def unavailable(*args: Any, **kw: Any) -> Obj | None:
        raise OSError("connection refused")

    cluster.read = unavailable  # type: ignore[method-assign]
    clock.t += TIMING.renew_deadline - 0.5
    assert await a.step() is True  # still inside the deadline
    clock.t += 1.0
    assert a.is_leader is False  # the property alone says so: a loop gate stops at once
    assert await a.step() is False and lost == [True, False]
    assert "connection refused" in a.last_error


async def test_gated_loop_runs_only_on_the_leader() -> None:
    cluster, clock = SnapshotCluster(), Clock()
    a, b = elector(cluster, clock, "a"), elector(cluster, clock, "b")
    await a.step()
    await b.step()
    runs: list[str] = []

    async def act_a() -> None:
        runs.append("a")

    async def act_b() -> None:
        runs.append("b")

    la = PeriodicLoop("a", 1.0, act_a, gate=lambda: a.is_leader)
    lb = PeriodicLoop("b", 1.0, act_b, gate=lambda: b.is_leader)
    await la.run_once()
    await lb.run_once()
    assert runs == ["a"] and lb.skipped == 1


async def test_background_electors_fail_over_in_real_time() -> None:
    """The async loop itself, with short real timings: kill the leader's task without releasing."""
    cluster = SnapshotCluster()
    fast = LeaseTiming(lease_duration=1.0, renew_deadline=0.6, retry_period=0.1)  # whole seconds on the wire
    a = LeaseElector(cluster, name=NAME, namespace=NS, identity="a", timing=fast, component="rt-a")
    b = LeaseElector(cluster, name=NAME, namespace=NS, identity="b", timing=fast, component="rt-b")
    a.start()
    await asyncio.sleep(0.1)
    b.start()
    await asyncio.sleep(0.2)
    assert a.is_leader and not b.is_leader
    loop = asyncio.get_running_loop()
    killed = loop.time()
    await a.stop(release=False)  # a crash: the lease is left to run out
    while not b.is_leader and loop.time() - killed < 3:
        await asyncio.sleep(0.01)
    waited = loop.time() - killed
    await b.stop()
    assert b.transitions_seen == 1
    # the lease runs out 1 s after a's last renewal (at most one period before the kill), b sees it at once
    assert fast.lease_duration - fast.retry_period - 0.05 <= waited <= fast.lease_duration + 0.3


def test_next_spec_rules() -> None:
    now = 1_700_000_000.0
    assert next_spec({"holderIdentity": "x"}, "me", now, True, 10) is None
    took = next_spec({"holderIdentity": "x", "leaseTransitions": 3}, "me", now, False, 10)
    assert took is not None and took["leaseTransitions"] == 4 and took["holderIdentity"] == "me"
    renewed = next_spec(
        {"holderIdentity": "me", "acquireTime": "A", "leaseTransitions": 4}, "me", now, True, 10
    )
    assert renewed is not None and renewed["acquireTime"] == "A" and renewed["leaseTransitions"] == 4
    released = next_spec({"holderIdentity": "", "leaseTransitions": 4}, "me", now, True, 10)
    assert released is not None and released["leaseTransitions"] == 5
    assert micro_time(0.5) == "1970-01-01T00:00:00.500000Z"


@pytest.mark.parametrize(
    ("lease_s", "renew_s", "retry_s", "fails"),
    [(10, 7, 2, False), (15, 10, 2, False), (10, 10, 2, True), (10, 7, 6, True)],
)
def test_timing_rules(lease_s: float, renew_s: float, retry_s: float, fails: bool) -> None:
    overrides = {
        "leader_election_lease_duration": lease_s,
        "leader_election_renew_deadline": renew_s,
        "leader_election_retry_period": retry_s,
    }
    if fails:
        with pytest.raises(SettingsError, match="leader election"):
            load_settings(overrides)
    else:
        load_settings(overrides)


class SharedSnapshot(SnapshotCluster):
    """A snapshot view posing as a live cluster (what replicas share): create_app must elect."""

    shared = True


def test_app_elects_on_a_shared_cluster_and_probes_tell_serving_from_leading() -> None:
    settings = Settings(cluster="demo", leader_election_identity="pod-a")
    assert isinstance(build_leadership(settings, SnapshotCluster()), AlwaysLeader)
    assert isinstance(
        build_leadership(settings.model_copy(update={"leader_election": False}), SharedSnapshot()),
        AlwaysLeader,
    )

    cluster = SharedSnapshot()
    app = create_app(settings, cluster=cluster, components=[])
    with TestClient(app) as client:
        for _ in range(100):
            if client.get("/leaderz").status_code == 200:
                break
            time.sleep(0.02)
        body = client.get("/leaderz").json()
        assert body["leader"] is True and body["identity"] == "pod-a" and body["lease"] == f"{NS}/{NAME}"
        assert client.get("/readyz").json()["leader"] is True
        assert gauge("controllers") == 1
        # a second replica on the same Lease serves (ready) but does not lead
        other = LeaseElector(cluster, name=NAME, namespace=NS, identity="pod-b", component="pod-b")
        assert asyncio.run(other.step()) is False and other.holder == "pod-a"
    # shutdown released the lease for the next leader
    assert lease(cluster)["spec"]["holderIdentity"] == ""
    assert gauge("controllers") == 0


def test_demo_process_is_always_leader() -> None:
    with TestClient(create_app(Settings(cluster="demo"), components=[])) as client:
        assert client.get("/leaderz").json() == {"leader": True, "identity": "single", "election": "off"}
        assert client.get("/readyz").json()["leader"] is True

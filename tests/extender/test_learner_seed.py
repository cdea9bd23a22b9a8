"""The typical-pod learner learns from the cluster, not only from calls: seeded at start from the cluster
view's GPU pods (bound and pending), kept current by its watch, each pod counted once; a fresh learner holds
the packing prior."""

from __future__ import annotations

from typing import Any

import numpy as np

from extender import fragmentation as fr
from extender.arrays import ClusterState, NodeCapacity, PodRequest
from extender.core import ScoringConfig, score_parts
from tests.extender.conftest import make_node, make_pod


def test_seeded_from_the_view_then_the_watch_each_pod_once(make_client: Any) -> None:
    objs = [
        make_node("a", gpus=8),
        make_pod("run-1", gpus=4, node="a", phase="Running"),
        make_pod("run-2", gpus=1, node="a", phase="Running"),
        make_pod("pending-1", gpus=2),
        make_pod("done-1", gpus=8, node="a", phase="Succeeded"),  # finished: not the current workload
        make_pod("cpu-only", gpus=0),
    ]
    client, cluster, comp = make_client(objs)
    learner = comp.frag
    assert learner.seen == 3
    cluster.upsert(make_pod("new-1", gpus=8))
    assert learner.seen == 4
    cluster.upsert(make_pod("new-1", gpus=8, node="a", phase="Running"))  # the same pod, bound
    assert learner.seen == 4
    body = {"Pod": make_pod("new-1", gpus=8), "NodeNames": ["a"]}
    client.post("/filter", json=body)  # kube-scheduler asking about it: still once
    assert learner.seen == 4
    counts = {spec[2]: n for spec, n in learner.counts.items() if spec[0]}  # real pods (the prior has cpu 0)
    assert counts == {4: 1.0, 1: 1.0, 2: 1.0, 8: 1.0}


def test_the_prior_makes_a_fresh_learner_pack() -> None:
    """Nothing learnt yet: a 1-GPU pod scores higher on a node with 2 GPUs left than on empty nodes."""
    st = ClusterState.from_nodes([NodeCapacity(n, 64000, 512000, 8) for n in ("empty", "busy", "empty2")])
    st.place(1, PodRequest(gpu_count=6, gpu_milli=1000), list(range(6)))
    one = PodRequest(cpu_milli=1000, gpu_count=1, gpu_milli=1000)
    learner = fr.TypicalPodLearner()
    learner.observe_pod("p", one)
    res = score_parts(st, np.arange(3), one, ScoringConfig(), None, learner).resource
    assert res[1] > res[0] == res[2]
    without = fr.TypicalPodLearner(prior={})
    without.observe_pod("p", one)
    flat = score_parts(st, np.arange(3), one, ScoringConfig(), None, without).resource
    assert flat[0] == flat[1] == flat[2]  # only 1-GPU pods known: FGD sees no difference

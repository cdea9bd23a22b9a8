"""Node / Pod objects -> NodeInfo / PodAsk, and Kubernetes quantities."""

from __future__ import annotations

from decimal import Decimal

import pytest

from extender.inventory import InventoryError, parse_node, parse_pod, parse_quantity
from tests.extender.conftest import BRIDGED_4, make_node, make_pod, sample_nodes


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("4", 4),
        ("500m", Decimal("0.5")),
        ("64Gi", 64 * 2**30),
        ("1e3", 1000),
        ("100M", 10**8),
        ("1.5", Decimal("1.5")),
        ("2101855640Ki", 2101855640 * 1024),
        (2, 2),
    ],
)
def test_quantities(text: object, value: object) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("bad", ["", "4x", "Gi", "1..2", None, True])
def test_bad_quantities(bad: object) -> None:
    with pytest.raises(InventoryError):
        parse_quantity(bad)


def test_sample_nodes_from_annotation() -> None:
    l40s, a100 = (parse_node(n) for n in sample_nodes())
    assert (l40s.capacity.gpu_count, l40s.capacity.cpu_milli, l40s.capacity.memory_mib) == (
        4,
        128000,
        1007 * 1024,
    )
    assert l40s.links is not None and l40s.links[0][1] == "PIX" and l40s.links[0][2] == "SYS"
    assert l40s.gpu_memory_mib == 46068 and l40s.source == "annotation"
    assert a100.capacity.model == "nvidia-a100-sxm4-80gb" and a100.links is not None


def test_labels_fallback_has_unknown_topology() -> None:
    info = parse_node(make_node("n", gpus=4, annotate=False))
    assert info.links is None and info.source == "labels"
    assert info.capacity.gpu_count == 4 and info.gpu_memory_mib == 81559


def test_mig_node_and_allocated_flags() -> None:
    node = make_node("m", gpus=2, allocated=(1,), mig={"1g.10gb": 7, "3g.40gb": 2})
    info = parse_node(node)
    assert info.mig == {"1g.10gb": 7, "3g.40gb": 2}
    assert info.allocated == frozenset({1})


def test_allocatable_disagreeing_with_annotation_drops_topology() -> None:
    node = make_node("n", gpus=4, links=BRIDGED_4)
    node["status"]["allocatable"]["nvidia.com/gpu"] = "3"  # one GPU unhealthy per the device plugin
    info = parse_node(node)
    assert info.capacity.gpu_count == 3 and info.links is None


def test_pod_effective_request_and_annotations() -> None:
    pod = make_pod(
        "p",
        gpus=2,
        annotations={
            "gpu-autoscaler.io/gpu-memory": "40Gi",
            "gpu-autoscaler.io/gpu-product": "H100, A100",
            "gpu-autoscaler.io/topology": "required",
        },
        labels={"gpu-autoscaler.io/pod-group": "g", "gpu-autoscaler.io/pod-group-min": "3"},
    )
    pod["spec"]["containers"].append(
        {"name": "side", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}
    )
    pod["spec"]["initContainers"] = [{"name": "init", "resources": {"requests": {"cpu": "16"}}}]
    ask = parse_pod(pod)
    assert ask.req.gpu_count == 2 and ask.req.gpu_milli == 1000
    assert ask.req.cpu_milli == 16000  # max(sum of containers 4.1, init 16)
    assert ask.req.memory_mib == 32 * 1024 + 64
    assert ask.gpu_memory_mib == 40 * 1024 and ask.products == ("h100", "a100") and ask.topology == "required"
    assert (ask.group, ask.group_min) == ("g", 3)


def test_limits_only_and_mig_pod() -> None:
    pod = make_pod("p", mig="1g.10gb")
    pod["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/mig-1g.10gb": "1", "cpu": "2"}}
    ask = parse_pod(pod)
    assert ask.mig == (("1g.10gb", 1),) and not ask.req.wants_gpu and ask.wants_gpu
    assert ask.req.cpu_milli == 2000

"""Node agent: NVML discovery over fake machines, the annotation, the topo-text parser, the command."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from app.agent.annotation import AnnotationError, GpuDevice, build_annotation, node_patch, normalise_bus_id
from app.agent.command import write_once
from app.agent.nvml import discover, nvlink_counts
from app.agent.topo_text import TopoParseError, parse_topo
from app.cli import main
from app.cluster.snapshot import SnapshotCluster
from extender.inventory import parse_node
from tests.ops.conftest import b200_failed_links, hgx_h100, l40s_two_socket

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "agent"


def test_hgx_h100_nvswitch_every_pair_nv18(tmp_path: Path) -> None:
    devices, links = discover(hgx_h100(), sysfs=tmp_path)
    assert [d.index for d in devices] == list(range(8))
    assert all(links[i][j] == ("X" if i == j else "NV18") for i in range(8) for j in range(8))
    d0 = devices[0]
    assert d0.pci_bus_id == "0000:18:00.0" and d0.uuid == "GPU-00000000-fake"
    assert d0.memory_mib == 81559 and d0.product == "NVIDIA H100 80GB HBM3"
    assert [d.numa_node for d in devices] == [0, 0, 0, 0, 1, 1, 1, 1]


def test_l40s_two_socket_pcie_levels_and_sysfs_numa(tmp_path: Path) -> None:
    for bus, numa in (("0000:4f:00.0", 0), ("0000:52:00.0", 0), ("0000:ce:00.0", 1)):
        (tmp_path / bus).mkdir()
        (tmp_path / bus / "numa_node").write_text(f"{numa}\n")
    (tmp_path / "0000:d1:00.0").mkdir()
    (tmp_path / "0000:d1:00.0" / "numa_node").write_text("-1\n")
    devices, links = discover(l40s_two_socket(), sysfs=tmp_path)
    assert links == [
        ["X", "NODE", "SYS", "SYS"],
        ["NODE", "X", "SYS", "SYS"],
        ["SYS", "SYS", "X", "NODE"],
        ["SYS", "SYS", "NODE", "X"],
    ]
    assert [d.numa_node for d in devices] == [0, 0, 1, None]


def test_b200_failed_links(tmp_path: Path) -> None:
    _, links = discover(b200_failed_links(dead_gpu=2, one_link_gpu=5), sysfs=tmp_path)
    assert links[2] == ["NODE", "NODE", "X", "NODE", "SYS", "SYS", "SYS", "SYS"]
    assert [row[2] for row in links] == links[2]
    assert links[5][0] == "NV17" and links[0][5] == "NV17"  # one link fewer through the first switch
    assert links[0][1] == "NV18" and links[6][7] == "NV18"


def test_direct_nvlink_bridge_pairs() -> None:
    bus = ["0000:01:00.0", "0000:02:00.0", "0000:03:00.0"]
    remotes = [[bus[1]] * 12, [bus[0]] * 12, []]
    assert nvlink_counts(remotes, bus) == [[0, 12, 0], [12, 0, 0], [0, 0, 0]]


def test_annotation_is_the_contract_and_the_extender_reads_it(tmp_path: Path) -> None:
    devices, links = discover(hgx_h100(), sysfs=tmp_path)
    ann = build_annotation(devices, links)
    assert ann["version"] == 1 and len(ann["gpus"]) == 8
    assert set(ann["gpus"][0]) == {
        "index",
        "uuid",
        "product",
        "memoryMiB",
        "numaNode",
        "pciBusId",
        "migEnabled",
        "allocated",
    }
    node = {
        "metadata": {"name": "n1", **node_patch(ann)["metadata"]},
        "status": {"allocatable": {"nvidia.com/gpu": "8"}},
    }
    info = parse_node(node)
    assert info.source == "annotation" and info.links is not None and info.links[0][1] == "NV18"
    assert info.gpu_memory_mib == 81559


@pytest.mark.parametrize(
    ("links", "match"),
    [
        ([["X", "NV4"]], "expected 2 rows"),
        ([["X", "FOO"], ["FOO", "X"]], "unknown token"),
        ([["NV4", "NV4"], ["NV4", "X"]], "diagonal"),
    ],
)
def test_build_annotation_rejects_bad_links(links: list[list[str]], match: str) -> None:
    with pytest.raises(AnnotationError, match=match):
        build_annotation([GpuDevice(0), GpuDevice(1)], links)


def test_bus_id_normalised() -> None:
    assert normalise_bus_id(b"00000000:1a:00.0\x00") == "0000:1A:00.0"
    assert normalise_bus_id("18:00.0") == "0000:18:00.0"


# -- nvidia-smi topo -m text ------------------------------------------------------------------------------
def test_parse_tab_form_with_nics_and_gpu_numa_id() -> None:
    m = parse_topo((FIXTURES / "hgx-h100-tabs.txt").read_text())
    assert m.indices == list(range(8)) and m.nics == ["NIC0", "NIC1"]
    assert m.links[0][7] == "NV18" and m.links[3][3] == "X"
    assert m.affinity[4] == {"CPU Affinity": "56-111,168-223", "NUMA Affinity": "1", "GPU NUMA ID": "N/A"}
    assert [d.numa_node for d in m.devices()] == [0, 0, 0, 0, 1, 1, 1, 1]


def test_parse_space_form_with_wrapper_and_mlx_columns() -> None:
    m = parse_topo((FIXTURES / "l40s-spaces.txt").read_text())
    assert m.nics == ["mlx5_0"]
    assert m.links[0] == ["X", "NODE", "SYS", "SYS"]
    assert m.affinity[2] == {"CPU Affinity": "32-63,96-127", "NUMA Affinity": "1"}


def test_parse_indented_vllm_collect_env() -> None:
    text = "GPU Topology:\n" + "\n".join(
        "    " + ln for ln in (FIXTURES / "l40s-spaces.txt").read_text().splitlines()[1:6]
    )
    assert parse_topo(text).links[3] == ["SYS", "SYS", "NODE", "X"]


def test_parse_empty_cpu_affinity_space_form() -> None:
    text = "\tGPU0\tGPU1\tCPU Affinity\tNUMA Affinity\nGPU0\t X \tPHB\t\t0\nGPU1\tPHB\t X \t\t0\n"
    assert parse_topo(text).affinity[1] == {"CPU Affinity": "", "NUMA Affinity": "0"}
    spaced = (
        "        GPU0    GPU1    CPU Affinity    NUMA Affinity\n"
        "GPU0     X      PHB             0\n"
        "GPU1    PHB      X              0\n"
    )
    assert parse_topo(spaced).affinity[0] == {"NUMA Affinity": "0"}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("nothing here\n", "no `nvidia-smi topo -m` header"),
        ("\tGPU0\tGPU1\tCPU Affinity\nGPU0\t X \tNV4\t0-7\nGPU1\tNV4\n", "line 3: GPU1 has 1 cells"),
        ("\tGPU0\tGPU1\nGPU0\t X \tNVX\nGPU1\tNV4\t X \n", "line 2: GPU0: unknown link token 'NVX'"),
        ("\tGPU0\tGPU1\nGPU0\t X \tNV4\nbogus row\n", "line 3: expected a GPU<n> or NIC row"),
        (
            "\tGPU0\tGPU1\tCPU Affinity\nGPU0\t X \tNV4\tPIX\t0-7\nGPU1\tNV4\t X \tPIX\t0-7\n",
            "line 2: GPU0: 2 affinity",
        ),
    ],
)
def test_parse_errors_name_the_line(text: str, match: str) -> None:
    with pytest.raises(TopoParseError, match=match):
        parse_topo(text)


# -- the command ------------------------------------------------------------------------------------------
def test_agent_without_nvml_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["agent", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gpu-autoscaler: error: agent: NVML unavailable") and "\n" not in err


def test_agent_dry_run_from_topo_file(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        [
            "agent",
            "--dry-run",
            "--from-topo-file",
            str(FIXTURES / "hgx-h100-tabs.txt"),
            "--product",
            "NVIDIA H100 80GB HBM3",
            "--memory-mib",
            "81559",
        ]
    )
    assert rc == 0
    ann = json.loads(capsys.readouterr().out)
    assert ann["version"] == 1 and ann["gpus"][7]["numaNode"] == 1 and ann["links"][1][0] == "NV18"


def test_agent_bad_topo_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "topo.txt"
    bad.write_text("\tGPU0\tGPU1\nGPU0\t X \tNV4\nGPU1\tZZZ\t X \n")
    assert main(["agent", "--dry-run", "--from-topo-file", str(bad)]) == 2
    assert "line 3" in capsys.readouterr().err
    assert main(["agent", "--from-topo-file", str(bad)]) == 2  # no node name either way


def test_write_once_patches_the_node_and_fills_labels(demo_path: Path) -> None:
    cluster = SnapshotCluster(demo_path)
    m = parse_topo((FIXTURES / "l40s-spaces.txt").read_text())
    ann = build_annotation(m.devices(), m.links)

    async def go() -> tuple[bool, bool]:
        await cluster.start()
        return await write_once(cluster, "l40s-0", ann), await write_once(cluster, "l40s-0", ann)

    first, second = asyncio.run(go())
    assert (first, second) == (True, False)
    node = cluster.get("Node", "l40s-0")
    assert node is not None
    written = json.loads(node["metadata"]["annotations"]["gpu-autoscaler.io/topology"])
    assert written["gpus"][0]["product"] == "NVIDIA L40S" and written["gpus"][0]["memoryMiB"] > 0


def test_agent_writes_to_snapshot_cluster(demo_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        [
            "agent",
            "--node",
            "l40s-1",
            "--cluster",
            str(demo_path),
            "--from-topo-file",
            str(FIXTURES / "l40s-spaces.txt"),
        ]
    )
    assert rc == 0
    assert (
        main(
            [
                "agent",
                "--node",
                "nope",
                "--cluster",
                str(demo_path),
                "--from-topo-file",
                str(FIXTURES / "l40s-spaces.txt"),
            ]
        )
        == 2
    )
    assert "node nope not found" in capsys.readouterr().err

"""`gpu-autoscaler agent`: discover this node's GPUs and topology, write the `gpu-autoscaler.io/topology`
annotation on its Node (or print it with `--dry-run`), once or every `--interval` seconds.

Sources: NVML (default) or an `nvidia-smi topo -m` text (`--from-topo-file`, for machines where NVML is not
reachable from the agent's container, and for fixtures). No NVML -> exit 2 with one line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from app.agent.annotation import (
    ANNOTATION,
    AnnotationError,
    GpuDevice,
    annotation_text,
    build_annotation,
    node_patch,
)
from app.agent.nvml import Nvml, NvmlUnavailable, discover, load_pynvml
from app.agent.topo_text import TopoParseError, parse_topo
from app.cli import CliError
from app.cluster.base import ClusterView

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    p = sub.add_parser("agent", help="node agent: discover GPUs + topology (NVML), write the node annotation")
    p.add_argument("--node", default=None, help="Node name (default: $NODE_NAME)")
    p.add_argument("--dry-run", action="store_true", help="print the annotation JSON instead of writing it")
    p.add_argument("--interval", type=float, default=None, help="refresh every N seconds (default: once)")
    p.add_argument(
        "--from-topo-file", type=Path, default=None, help="read `nvidia-smi topo -m` text, not NVML"
    )
    p.add_argument(
        "--product", default="", help="with --from-topo-file: GPU product name (default: node label)"
    )
    p.add_argument(
        "--memory-mib", type=int, default=0, help="with --from-topo-file: MiB per GPU (default: label)"
    )
    p.add_argument("--cluster", default="kube", help="kube (default) | PATH of a snapshot (tests, demos)")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.set_defaults(func=run)


def collect(args: argparse.Namespace, nvml: Nvml | None = None) -> dict[str, Any]:
    """The annotation from the chosen source. Raises CliError for unusable input."""
    if args.from_topo_file is not None:
        try:
            matrix = parse_topo(Path(args.from_topo_file).read_text())
        except OSError as exc:
            raise CliError(f"--from-topo-file: {exc.strerror or exc}: {args.from_topo_file}") from exc
        except TopoParseError as exc:
            raise CliError(f"--from-topo-file {args.from_topo_file}: {exc}") from exc
        devices: list[GpuDevice] = matrix.devices(args.product, args.memory_mib)
        links = matrix.links
    else:
        if nvml is None:
            try:
                nvml = load_pynvml()
            except NvmlUnavailable as exc:
                raise CliError(f"agent: {exc}") from exc
            try:
                devices, links = discover(nvml)
            finally:
                nvml.nvmlShutdown()
        else:
            devices, links = discover(nvml)
    try:
        return build_annotation(devices, links)
    except AnnotationError as exc:
        raise CliError(f"agent: {exc}") from exc


def fill_from_labels(annotation: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Product / memory the source did not know (topo text) taken from the node's GFD labels."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    product = str(labels.get("nvidia.com/gpu.product", "")).replace("-", " ")
    memory = str(labels.get("nvidia.com/gpu.memory", ""))
    for gpu in annotation["gpus"]:
        if not gpu["product"] and product:
            gpu["product"] = product
        if not gpu["memoryMiB"] and memory.isdigit():
            gpu["memoryMiB"] = int(memory)
    return annotation


def _cluster(choice: str, node_name: str) -> ClusterView:
    """kube: a watch on this one Node only (a DaemonSet of agents must not each list every pod)."""
    if choice == "kube":
        from app.cluster.kube import KubeCluster, KubeConfigError

        cluster = KubeCluster(kinds=("Node",), field_selectors={"Node": f"metadata.name={node_name}"})
        try:
            cluster.connect()
        except KubeConfigError as exc:
            raise CliError(f"cluster kube: {exc}") from exc
        return cluster
    from app.cluster.snapshot import SnapshotCluster, SnapshotError

    snap = SnapshotCluster(Path(choice))
    try:
        snap.load()
    except SnapshotError as exc:
        raise CliError(f"cluster snapshot: {exc}") from exc
    return snap


async def write_once(cluster: ClusterView, node_name: str, annotation: dict[str, Any]) -> bool:
    """Patch the Node when the annotation changed. Returns whether it wrote."""
    node = cluster.get("Node", node_name)
    if node is None:
        raise CliError(f"agent: node {node_name} not found")
    annotation = fill_from_labels(annotation, node)
    text = annotation_text(annotation)
    if ((node.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION) == text:
        log.info("topology unchanged", extra={"node": node_name})
        return False
    await cluster.patch("Node", node_name, "", node_patch(annotation))
    log.info("topology written", extra={"node": node_name, "gpus": len(annotation["gpus"])})
    return True


async def _serve(args: argparse.Namespace, node_name: str) -> None:
    cluster = _cluster(args.cluster, node_name)
    await cluster.start()
    try:
        while True:
            await write_once(cluster, node_name, collect(args))
            if not args.interval:
                return
            await asyncio.sleep(args.interval)
    finally:
        await cluster.stop()


def run(args: argparse.Namespace) -> int:
    from app.logging_setup import setup_logging

    setup_logging(args.log_level)
    if args.interval is not None and args.interval <= 0:
        raise CliError("--interval must be > 0")
    if args.dry_run:
        sys.stdout.write(json.dumps(collect(args), indent=2) + "\n")
        return 0
    node_name = args.node or os.environ.get("NODE_NAME", "")
    if not node_name:
        raise CliError("agent: no node name: pass --node or set NODE_NAME (the downward API's spec.nodeName)")
    asyncio.run(_serve(args, node_name))
    return 0

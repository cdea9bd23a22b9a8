"""Topology part: how good a GPU set the node can give this pod, and how little it breaks for others.

Lookups into the per-shape tables of `extender.topology` (precomputed per free-GPU mask and pod size).
Neutral (50) for: unknown topology, MIG slices, pods that ask no GPU, `gpu-autoscaler.io/topology: none`,
and pods of one GPU or a share of one — they have no interconnect to gain, so where they go is the resource
part's call (packing); the GPU they get inside the node still keeps NVLink sets whole (`choose_gpus`).
"""

from __future__ import annotations

import numpy as np

from extender.arrays import ClusterState, IntArray
from extender.inventory import PodAsk
from extender.topology import NEUTRAL, FloatArray, TopologyIndex, free_masks


def topology_scores(
    state: ClusterState, rows: IntArray, ask: PodAsk, topo: TopologyIndex | None
) -> FloatArray:
    out = np.full(len(rows), NEUTRAL)
    req = ask.req
    if topo is None or req.gpu_count < 2 or ask.topology == "none" or len(rows) == 0:
        return out
    ids = topo.shape_ids(rows)
    known = ids >= 0
    if not known.any():
        return out
    fm = free_masks(state, rows)
    k = req.gpu_count
    for sid in np.unique(ids[known]):
        sel = ids == sid
        shape = topo.shapes[int(sid)]
        if k > shape.n:
            out[sel] = 0.0
            continue
        masks = fm[sel] & ((1 << shape.n) - 1)
        if shape.exact:
            out[sel] = shape.score[masks, k]
        else:
            out[sel] = [shape.lookup(int(m), k)[0] for m in masks]
    return np.nan_to_num(out, nan=0.0)  # k > free GPUs: the filter drops such nodes; score them 0

"""The waste score at its thresholds and with exact values (issue 11, item 8): the idle rule needs *every*
known use below 5 %, a use of exactly 5 % or 20 % is not "low", one known measure carries the whole weight."""

from __future__ import annotations

import pytest

from app.waste.score import GpuUse, score_one, waste_scores


@pytest.mark.parametrize(
    ("compute", "memory", "score", "reasons"),
    [
        (0.01, 0.02, 100.0, ("idle GPU held", "compute 1%, memory 2%")),
        (0.01, None, 100.0, ("idle GPU held", "compute 1%")),
        (None, 0.03, 100.0, ("idle GPU held", "memory 3%")),
        # all known uses must be idle, not any: busy memory keeps it from "idle"
        (0.01, 0.9, 68.6, ("low compute: 1% < 20%",)),
        # 5 % is not below the idle line
        (0.05, 0.05, 90.0, ("low compute: 5% < 20%", "low memory: 5% < 25%")),
        # the low-use lines themselves are not low
        (0.2, 0.25, 57.0, ()),
        (0.19, 0.24, 59.0, ("low compute: 19% < 20%", "low memory: 24% < 25%")),
        # a use above the target wastes nothing (not less than nothing)
        (1.0, 0.0, 30.0, ("low memory: 0% < 25%",)),
        # one measure carries the whole weight
        (0.25, None, 50.0, ()),
        (None, 0.3, 40.0, ()),
        # two decimals, no more
        (0.1234, 0.4, 58.72, ("low compute: 12% < 20%",)),
    ],
)
def test_score_one_exact(
    compute: float | None, memory: float | None, score: float, reasons: tuple[str, ...]
) -> None:
    assert score_one(compute, memory) == (score, reasons)


def test_no_measure_no_score() -> None:
    assert score_one(None, None) is None
    assert score_one(float("nan"), None) is None


def test_scores_carry_clamped_inputs_and_every_field() -> None:
    uses = [
        GpuUse("ns", "empty", "n0", "0"),  # no data: skipped, the rest still scored
        GpuUse("ns", "hot", "n1", "1", compute=1.5, memory=-0.2),
        GpuUse("ns", "cold", "n2", "0/7", compute=0.3, memory=0.6),
    ]
    out = waste_scores(uses)
    assert [(w.namespace, w.pod, w.node, w.gpu) for w in out] == [
        ("ns", "hot", "n1", "1"),
        ("ns", "cold", "n2", "0/7"),
    ]
    hot, cold = out
    assert (hot.compute, hot.memory, hot.score) == (1.0, 0.0, 30.0)
    assert (cold.compute, cold.memory, cold.score) == (0.3, 0.6, 28.0)
    assert not hot.idle and hot.reasons == ("low memory: 0% < 25%",)

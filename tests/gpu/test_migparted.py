"""mig-parted configs in their real format: parsing, per-GPU semantics, the geometry check, the bundle."""

from __future__ import annotations

import textwrap

import pytest

from app.gpu.mig import LayoutError, geometry_for, place
from app.gpu.migparted import MigConfigError, bundled, parse_mig_config
from tests.mig.conftest import CONFIG

A100_80 = geometry_for("NVIDIA-A100-SXM4-80GB")
A100_40 = geometry_for("NVIDIA-A100-SXM4-40GB")
A30 = geometry_for("NVIDIA A30")
assert A100_80 and A100_40 and A30


@pytest.mark.parametrize(
    ("counts", "ok"),
    [
        ({"1g.10gb": 7}, True),
        ({"3g.40gb": 2}, True),
        ({"4g.40gb": 1, "3g.40gb": 1}, True),
        ({"3g.40gb": 1, "2g.20gb": 1, "1g.10gb": 2}, True),  # 3g at 4, 2g at 0, 1g at 2 and 3
        ({"2g.20gb": 3, "1g.10gb": 1}, True),
        ({"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1}, True),  # all-balanced
        ({"3g.40gb": 2, "1g.10gb": 1}, False),  # both 3g take slots 0-7: no room for the 1g
        ({"1g.10gb": 8}, False),  # max 7 instances
        ({"4g.40gb": 1, "2g.20gb": 2}, False),  # 8 compute slices
        ({"7g.80gb": 1, "1g.10gb": 1}, False),
        ({"1g.10gb+me": 2}, False),  # one media-extension instance per GPU
        ({"1g.5gb": 1}, False),  # an A100-40GB profile
    ],
)
def test_placement_on_an_a100_80gb(counts: dict[str, int], ok: bool) -> None:
    assert A100_80 is not None
    if ok:
        starts = place(A100_80, counts)
        taken = [s for p, start in starts for s in range(start, start + A100_80.profile(p).placement_size)]  # type: ignore[union-attr]
        assert len(taken) == len(set(taken)) and max(taken) < 8
        assert sorted(p for p, _ in starts) == sorted(p for p, n in counts.items() for _ in range(n))
    else:
        with pytest.raises(LayoutError):
            place(A100_80, counts)


def test_a30_has_four_slices() -> None:
    assert A30 is not None
    assert place(A30, {"1g.6gb": 4})
    with pytest.raises(LayoutError, match="compute slices"):
        place(A30, {"2g.12gb": 2, "1g.6gb": 1})


def test_per_gpu_layout_last_entry_wins_and_unselected_gpus_are_left_alone() -> None:
    text = textwrap.dedent(
        """
        version: v1
        mig-configs:
          partial:
            - devices: all
              mig-enabled: true
              mig-devices: {"1g.10gb": 7}
            - devices: [1]
              mig-enabled: true
              mig-devices: {"3g.40gb": 2}
          two:
            - devices: [0, 1]
              mig-enabled: false
        """
    )
    cfg = parse_mig_config(text, "t")
    assert A100_80 is not None
    gpus = cfg.layouts["partial"].per_gpu(A100_80, 3)
    assert [g.describe() if g else None for g in gpus] == ["7x 1g.10gb", "2x 3g.40gb", "7x 1g.10gb"]
    assert [g.describe() if g else None for g in cfg.layouts["two"].per_gpu(A100_80, 3)] == [
        "MIG off",
        "MIG off",
        None,
    ]


def test_device_filters_pick_the_entry_per_gpu_model() -> None:
    cfg = bundled()
    assert A100_80 and A100_40
    assert cfg.layouts["all-1g.10gb"].per_gpu(A100_80, 1)[0].counts == {"1g.10gb": 7}  # type: ignore[union-attr]
    assert cfg.layouts["all-1g.10gb"].per_gpu(A100_40, 1)[0].counts == {"1g.10gb": 4}  # type: ignore[union-attr]
    assert cfg.layouts["all-balanced"].per_gpu(A100_40, 1)[0].counts == {  # type: ignore[union-attr]
        "1g.5gb": 2,
        "2g.10gb": 1,
        "3g.20gb": 1,
    }
    assert cfg.usable("all-2g.20gb", A100_80) and not cfg.usable("all-2g.20gb", A100_40)


def test_the_bundled_defaults_carry_the_gpu_operator_names() -> None:
    names = set(bundled().layouts)
    assert {
        "all-disabled",
        "all-enabled",
        "all-1g.10gb",
        "all-balanced",
        "all-3g.40gb",
        "all-1g.5gb",
    } <= names
    assert {"all-1g.6gb", "all-1g.12gb", "all-1g.18gb", "all-7g.141gb"} <= names
    assert bundled().notes() == []  # every bundled layout fits every GPU model it can apply to


def test_a_configmap_holding_the_config() -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "custom-mig-parted-config", "namespace": "gpu-operator"},
        "data": {"config.yaml": CONFIG},
    }
    import yaml

    cfg = parse_mig_config(yaml.safe_dump(cm), "cm.yaml")
    assert "mixed" in cfg.layouts and "custom-mig-parted-config" in cfg.source


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("version: v2\nmig-configs: {a: [{devices: all, mig-enabled: false}]}", "unknown version"),
        ("version: v1\nmig-configs: {}", "at least one entry in 'mig-configs'"),
        ("version: v1\nmig-configs: {a: []}", "a: at least one entry"),
        ("version: v1\nextra: 1\nmig-configs: {a: [{devices: all, mig-enabled: false}]}", "unexpected field"),
        (
            "version: v1\nmig-configs: {a: [{mig-enabled: false}]}",
            "a: entry 0: missing required field: devices",
        ),
        ("version: v1\nmig-configs: {a: [{devices: some, mig-enabled: false}]}", "devices must be 'all'"),
        (
            "version: v1\nmig-configs: {a: [{devices: all, mig-enabled: true}]}",
            "missing required field 'mig-devices'",
        ),
        (
            "version: v1\nmig-configs: {a: [{devices: all, mig-enabled: false, mig-devices: {1g.10gb: 1}}]}",
            "MIG devices included when 'mig-enabled' is false",
        ),
        (
            "version: v1\nmig-configs: {a: [{devices: all, mig-enabled: true, mig-devices: {big: 1}}]}",
            "invalid MIG profile name 'big'",
        ),
        (
            "version: v1\nmig-configs: {a: [{devices: all, mig-enabled: true, mig-devices: {1g.10gb: 0}}]}",
            "all counts for all MIG profiles are 0",
        ),
        ("version: v1\nmig-configs: [", "not valid YAML"),
    ],
)
def test_malformed_configs_are_one_line_errors(body: str, message: str) -> None:
    with pytest.raises(MigConfigError, match=message) as exc:
        parse_mig_config(body, "my.yaml")
    assert "\n" not in str(exc.value) and str(exc.value).startswith("mig-parted config my.yaml: ")


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        # an entry aimed at A100-80GB by device filter that cannot fit it
        (
            '[{device-filter: ["0x20B210DE"], devices: all, mig-enabled: true, '
            'mig-devices: {"3g.40gb": 2, "1g.10gb": 1}}]',
            "layout greedy is impossible on A100-SXM4-80GB: 1x 1g.10gb \\+ 2x 3g.40gb has no valid placement",
        ),
        (
            '[{device-filter: "0x20B210DE", devices: all, mig-enabled: true, mig-devices: {"1g.5gb": 7}}]',
            "layout greedy is impossible on A100-SXM4-80GB: no MIG profile 1g.5gb",
        ),
        # no filter, and no GPU model knowing these profiles can hold them
        (
            '[{devices: all, mig-enabled: true, mig-devices: {"1g.10gb": 8}}]',
            "layout greedy is impossible on every GPU it names",
        ),
    ],
)
def test_impossible_layouts_are_rejected_by_name(layout: str, message: str) -> None:
    with pytest.raises(MigConfigError, match=message):
        parse_mig_config(f"version: v1\nmig-configs:\n  greedy: {layout}\n", "t")


def test_a_layout_for_other_gpus_is_not_an_error() -> None:
    # RTX PRO 6000 profiles: no geometry here, so unusable on our GPUs but no error
    cfg = parse_mig_config(
        "version: v1\nmig-configs:\n"
        '  x: [{devices: all, mig-enabled: true, mig-devices: {"1g.24gb+gfx": 4}}]\n',
        "t",
    )
    assert A100_80 is not None and not cfg.usable("x", A100_80)
    # fits an A100-80GB, not an A100-40GB (the double-memory 1g.10gb): a note, usable where it fits
    cfg = parse_mig_config(
        'version: v1\nmig-configs:\n  y: [{devices: all, mig-enabled: true, mig-devices: {"1g.10gb": 7}}]\n',
        "t",
    )
    assert A100_40 is not None and cfg.usable("y", A100_80) and not cfg.usable("y", A100_40)
    assert cfg.notes() == ["y cannot be used on A100-SXM4-40GB: 7x 1g.10gb: A100-SXM4-40GB allows at most 4"]
    assert cfg.notes(["A100-SXM4-80GB"]) == []

"""Settings: precedence flags > env > YAML > defaults, one-line errors naming the setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.settings import ENV_PREFIX, Settings, SettingsError, load_settings


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_match_the_contract() -> None:
    s = load_settings()
    assert (s.host, s.port, s.cluster) == ("127.0.0.1", 8080, "auto")
    assert s.autoscaler_interval == 30.0
    assert s.namespace == "gpu-autoscaler"
    assert s.tls_cert is None and s.tls_key is None


def test_precedence_flags_over_env_over_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write(tmp_path / "c.yaml", "port: 1000\nhost: 0.0.0.0\nlog-level: DEBUG\nautoscaler_interval: 7\n")
    assert load_settings({"config": str(cfg)}).port == 1000
    monkeypatch.setenv(ENV_PREFIX + "PORT", "2000")
    s = load_settings({"config": str(cfg)})
    assert (s.port, s.host, s.log_level, s.autoscaler_interval) == (2000, "0.0.0.0", "DEBUG", 7.0)
    s = load_settings({"config": str(cfg), "port": 3000, "host": None})
    assert (s.port, s.host) == (3000, "0.0.0.0"), "None means 'flag not given'"


def test_config_file_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write(tmp_path / "c.yaml", "namespace: ops\n")
    monkeypatch.setenv(ENV_PREFIX + "CONFIG", str(cfg))
    assert load_settings().namespace == "ops"


#: values of the MIG / sharing controller settings that have a format of their own
ISSUE13_SAMPLES = {
    "mig_config_configmap": "gpu-operator/x-value",
    "sharing_configmap": "gpu-operator/x-value",
    "mig_target_mix": "1g=0.5,3g=0.5",
    "mig_max_parallel": "12",
    "sharing_max_parallel": "12",
    "sharing_strategy": "mps",
}


@pytest.mark.parametrize(
    "name",
    sorted(set(Settings.model_fields) - {"tls_cert", "tls_key", "tls_client_ca", "config", "prices_file"}),
)
def test_every_setting_reads_its_env_variable(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The contract: every setting also reads GPU_AUTOSCALER_<NAME>."""
    default = Settings.model_fields[name].default
    sample: dict[type, str] = {float: "12.5", int: "1234", str: "x-value"}
    value = sample.get(type(default), "x-value")
    if isinstance(default, bool):
        value = "False" if default else "True"
    elif Settings.model_fields[name].annotation == bool | None:  # unset = decided at start
        value = "True"
    elif isinstance(default, float) and default < 1:  # shares and thresholds
        value = "0.5"
    if name in {"log_level"}:
        value = "ERROR"
    elif name == "resource_policy":
        value = "spread"
    elif name == "node_autoscaling":
        value = "apply"
    elif name == "spot_labels":
        value = "capacity=spot"
    elif name in {"mig_underuse_threshold"}:
        value = "0.5"
    elif name == "mig_headroom":
        value = "0.3"
    elif name in {"leader_election_renew_deadline", "leader_election_retry_period"}:
        value = "2.5"  # must stay below the lease duration (renew) and the renew deadline / 1.2 (retry)
    elif name in ISSUE13_SAMPLES:
        value = ISSUE13_SAMPLES[name]
    elif name == "mig_config":
        value = str(
            write(
                tmp_path / "mig.yaml",
                "version: v1\nmig-configs: {off: [{devices: all, mig-enabled: false}]}\n",
            )
        )
    elif name in {"waste_window", "waste_flag_for", "history_window"}:  # Prometheus durations
        value = "7m"
    elif name == "history_timeout_seconds":  # must stay below the webhook's budget
        value = "0.5"
    monkeypatch.setenv(ENV_PREFIX + name.upper(), value)
    got = getattr(load_settings(), name)
    assert str(got) == value or float(got) == float(value)


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("port not a number", {"port": "abc"}, "invalid setting port"),
    ("port too big", {"port": 70000}, "invalid setting port"),
    ("negative interval", {"autoscaler_interval": 0}, "invalid setting autoscaler_interval"),
    (
        "stabilization too long",
        {"scale_down_stabilization": 99999},
        "invalid setting scale_down_stabilization",
    ),
    ("unknown log level", {"log_level": "LOUD"}, "invalid setting log_level"),
    ("unknown policy", {"resource_policy": "random"}, "invalid setting resource_policy"),
    ("threshold above 1", {"mig_underuse_threshold": 2}, "invalid setting mig_underuse_threshold"),
    ("tls cert file missing", {"tls_cert": "/nope/cert.pem", "tls_key": "/nope/key.pem"}, "tls_cert"),
    ("not a duration", {"waste_flag_for": "5 minutes"}, "invalid setting waste_flag_for"),
    ("history window not a duration", {"history_window": "banana"}, "invalid setting history_window"),
    ("zero duration", {"waste_window": "0m"}, "invalid setting waste_window"),
    ("all weights zero", {"topology_weight": 0, "resource_weight": 0, "balance_weight": 0}, "weight"),
]


@pytest.mark.parametrize(("case", "overrides", "expect"), BAD, ids=[b[0] for b in BAD])
def test_bad_values_give_one_line_naming_the_setting(
    case: str, overrides: dict[str, Any], expect: str
) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(overrides)
    msg = str(err.value)
    assert expect in msg
    assert "\n" not in msg


def test_bad_env_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_PREFIX + "PORT", "eighty")
    with pytest.raises(SettingsError, match=r"invalid setting port: .*'eighty'"):
        load_settings()


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("port: [1, 2\n", "not valid YAML"),
        ("- a\n- b\n", "must hold a mapping"),
        ("no_such_setting: 1\n", "invalid setting no_such_setting: Extra inputs are not permitted"),
        ("port: abc\n", "invalid setting port"),
    ],
)
def test_bad_config_file(tmp_path: Path, text: str, expect: str) -> None:
    cfg = write(tmp_path / "c.yaml", text)
    with pytest.raises(SettingsError) as err:
        load_settings({"config": str(cfg)})
    assert expect in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"^config: file not found: .*missing\.yaml$"):
        load_settings({"config": str(tmp_path / "missing.yaml")})


def test_empty_config_file_is_fine(tmp_path: Path) -> None:
    assert load_settings({"config": str(write(tmp_path / "c.yaml", ""))}).port == 8080


def test_tls_pair_rule(tmp_path: Path) -> None:
    cert = write(tmp_path / "tls.crt", "x")
    key = write(tmp_path / "tls.key", "x")
    with pytest.raises(SettingsError, match="tls_cert and tls_key must be given together"):
        load_settings({"tls_cert": str(cert)})
    with pytest.raises(SettingsError, match="tls_cert and tls_key must be given together"):
        load_settings({"tls_key": str(key)})
    s = load_settings({"tls_cert": str(cert), "tls_key": str(key)})
    assert s.tls_cert == cert and s.tls_key == key


def test_yaml_state_does_not_leak_between_loads(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.yaml", "port: 1111\n")
    assert load_settings({"config": str(cfg)}).port == 1111
    assert load_settings().port == 8080


@given(st.integers(min_value=-(10**6), max_value=10**6))
def test_port_range_property(port: int) -> None:
    if 0 <= port <= 65535:
        assert load_settings({"port": port}).port == port
    else:
        with pytest.raises(SettingsError, match="invalid setting port"):
            load_settings({"port": port})


def test_every_setting_is_documented() -> None:
    """docs/configuration.md lists every setting with its env name: add a row when you add a setting."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    missing = [
        n for n in Settings.model_fields if f"`{n}`" not in doc or f"`{ENV_PREFIX}{n.upper()}`" not in doc
    ]
    assert not missing, f"add these settings to docs/configuration.md: {missing}"

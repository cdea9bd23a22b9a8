"""Typed, validated settings: CLI flags > env `GPU_AUTOSCALER_*` > YAML file > defaults.

Validated once at start; the core receives plain values, never this object's internals.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "GPU_AUTOSCALER_"
#: a Prometheus duration: units in this order, each at most once, at least one (`1h30m`, `7d`, `500ms`)
_DURATION = re.compile(r"(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?")


class SettingsError(ValueError):
    """A setting is invalid; the message is one line, fit for a CLI exit."""


class _YamlSource(PydanticBaseSettingsSource):
    """Reads the optional `--config` YAML file (keys are setting names, `-` or `_`)."""

    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


class Settings(BaseSettings):
    """Every setting of the service. Add new ones in the section of the capability that owns them."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)

    # --- process -------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    cluster: str = Field("auto", description="demo | kube | auto | PATH to a snapshot file or folder")
    tls_cert: Path | None = None
    tls_key: Path | None = None
    config: Path | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    namespace: str = Field("gpu-autoscaler", description="namespace of the service's own ConfigMaps")
    prometheus_url: str | None = None
    kube_resync_seconds: float = Field(300.0, gt=0)

    # --- extender (issue 3) ----------------------------------------------------------------------
    topology_weight: float = Field(0.40, ge=0)
    resource_weight: float = Field(0.35, ge=0)
    balance_weight: float = Field(0.25, ge=0)
    resource_policy: Literal["binpack", "spread", "fragmentation"] = "fragmentation"
    assume_ttl_seconds: float = Field(30.0, gt=0)
    assume_yields_to_scheduler: bool = Field(
        True,
        description="drop an assumed placement that kube-scheduler's own nvidia.com/gpu count contradicts "
        "(needs managedResources ignoredByScheduler: false, as manifests/scheduler sets)",
    )

    # --- webhook (issue 4) -----------------------------------------------------------------------
    mig_underuse_threshold: float = Field(0.50, gt=0, le=1)
    mig_headroom: float = Field(0.20, ge=0, le=4)
    history_window: str = "7d"
    history_cache_ttl_seconds: float = Field(300.0, gt=0)
    history_timeout_seconds: float = Field(1.0, gt=0, le=10)

    # --- autoscaler (issue 5) --------------------------------------------------------------------
    autoscaler_interval: float = Field(30.0, gt=0)
    scale_up_stabilization: float = Field(0.0, ge=0, le=3600)
    scale_down_stabilization: float = Field(300.0, ge=0, le=3600)
    capacity_config_name: str = "capacity-scaling-config"
    autoscaler_stale_after: float = Field(90.0, gt=0, description="seconds; older vLLM samples are unknown")
    autoscaler_metrics_ttl: float = Field(15.0, gt=0, description="seconds a Prometheus snapshot is reused")
    autoscaler_write_status: bool | None = Field(
        None,
        description="write VariantAutoscaling status (default: on against a live cluster: --cluster kube)",
    )

    # --- operations: waste scoring, operator CLI ------------------------------------------------------
    waste_interval: float = Field(30.0, gt=0, description="seconds between waste-scoring cycles")
    waste_window: str = Field("10m", description="Prometheus range the DCGM use is averaged over")

    # --- hardening: limits, TLS, fault tolerance (issue 11) -------------------------------------------
    max_body_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="bytes; a larger request body gets 413 before it is read"
    )
    extender_budget_seconds: float = Field(
        4.0, gt=0, le=60, description="seconds a /filter or /prioritize may take before it answers Error"
    )
    webhook_budget_seconds: float = Field(
        2.5, gt=0, le=30, description="seconds a /mutate may take before it admits the pod unchanged"
    )
    shutdown_grace_seconds: float = Field(
        20.0,
        gt=0,
        le=600,
        description="seconds SIGTERM waits for requests in flight before the process exits",
    )
    tls_client_ca: Path | None = Field(
        None, description="CA file: POST endpoints then need a client certificate it signed (mutual TLS)"
    )
    history_reprobe_seconds: float = Field(
        10.0, gt=0, description="seconds between Prometheus probes while the history circuit is open"
    )

    # --- autoscaler: scale to and from zero, status (issue 12) ----------------------------------------
    scale_to_zero_config_name: str = Field(
        "wva-model-scale-to-zero-config", description="ConfigMap (in --namespace): WVA's scale-to-zero config"
    )
    scale_to_zero: bool | None = Field(
        None, description="scale-to-zero where the ConfigMap is silent (unset: WVA_SCALE_TO_ZERO, else off)"
    )
    autoscaler_wake_direct: bool = Field(
        False, description="scale a woken variant's Deployment 0->1 via /scale, not only via wva_* metrics"
    )
    autoscaler_wake_interval: float = Field(
        2.0, gt=0, le=60, description="seconds between gateway-queue polls while some model is at zero"
    )
    autoscaler_status_refresh: float = Field(
        300.0, gt=0, description="seconds; an unchanged VariantAutoscaling status is rewritten this often"
    )

    # --- MIG layout and GPU-sharing controllers (issue 13) ---------------------------------------------
    mig_apply: bool = Field(
        False, description="set nvidia.com/mig.config on nodes (default: dry-run, plan only)"
    )
    mig_interval: float = Field(60.0, gt=0, description="seconds between MIG layout plans")
    mig_max_parallel: int = Field(1, ge=1, le=100, description="nodes reconfiguring MIG at the same time")
    mig_cooldown: float = Field(
        1800.0, ge=0, description="seconds a node keeps a layout before the next change"
    )
    mig_pending_timeout: float = Field(
        900.0, gt=0, description="seconds a requested layout may take before the node is reported stuck"
    )
    mig_config: Path | None = Field(None, description="mig-parted config file (default: the ConfigMap below)")
    mig_config_configmap: str = Field(
        "gpu-operator/default-mig-parted-config",
        description="NAMESPACE/NAME of the ConfigMap mig-manager reads (ClusterPolicy migManager.config)",
    )
    mig_node_selector: str = Field(
        "nvidia.com/mig.config", description="label selector of the nodes whose MIG layout may change"
    )
    mig_target_mix: str = Field(
        "1g=0.7,2g=0.2,3g=0.1", description="target shares of compute slices per class; '' = none"
    )
    mig_demand_window: float = Field(
        3600.0, gt=0, description="seconds of webhook slice choices counted as recent demand"
    )
    sharing_apply: bool = Field(
        False, description="set nvidia.com/device-plugin.config on nodes (default: dry-run, plan only)"
    )
    sharing_interval: float = Field(60.0, gt=0, description="seconds between GPU-sharing plans")
    sharing_max_parallel: int = Field(1, ge=1, le=100, description="nodes changing sharing at the same time")
    sharing_cooldown: float = Field(1800.0, ge=0, description="seconds a node keeps its sharing config")
    sharing_timeout: float = Field(
        600.0, gt=0, description="seconds a requested sharing config may take before it is reported stuck"
    )
    sharing_configmap: str = Field(
        "gpu-operator/device-plugin-config",
        description="NAMESPACE/NAME of the device plugin ConfigMap (ClusterPolicy devicePlugin.config)",
    )
    sharing_node_selector: str = Field(
        "nvidia.com/device-plugin.config", description="label selector of the nodes whose sharing may change"
    )
    sharing_strategy: Literal["time-slicing", "mps"] = Field(
        "time-slicing", description="how the sharing pool shares GPUs (the webhook's node selector too)"
    )
    sharing_off_config: str = Field(
        "default", description="device-plugin config a node returns to when it leaves the sharing pool"
    )

    # --- node autoscaling through Cluster API (issue 14) -----------------------------------------------
    node_autoscaling: Literal["off", "dry-run", "apply"] = Field(
        "dry-run", description="off | dry-run (plan, log, Events; change nothing) | apply (scale node groups)"
    )
    node_autoscaling_interval: float = Field(30.0, gt=0, description="seconds between node-scaling cycles")
    node_group_selector: str = Field(
        "",
        description="MachineDeployment labels a group needs to be ours: 'k=v,k2,!k3' (empty: every group "
        "with the Cluster API autoscaler min/max annotations)",
    )
    scale_up_pending: float = Field(
        120.0, ge=0, description="seconds a GPU pod stays Pending before it scales up"
    )
    scale_up_pending_priority: float = Field(
        30.0, ge=0, description="seconds for pods at or above scale_up_high_priority (higher classes sooner)"
    )
    scale_up_high_priority: int = Field(
        1000, description="spec.priority from which scale_up_pending_priority applies"
    )
    scale_up_priority_cutoff: int = Field(
        -10, description="pods below this priority never scale up (Cluster Autoscaler's expendable cutoff)"
    )
    scale_down_idle: float = Field(
        600.0, ge=0, description="seconds a GPU node's GPUs stay unallocated before it goes"
    )
    scale_down_utilization: float = Field(
        0.20,
        ge=0,
        le=1,
        description="GPU allocation share under which a node goes when its pods fit elsewhere",
    )
    scale_down_delay_after_add: float = Field(
        600.0, ge=0, description="no scale-down this long after a scale-up"
    )
    scale_down_max_nodes: int = Field(1, ge=1, description="nodes drained per cycle at most")
    scale_down_skip_system_pods: bool = Field(
        True,
        description="kube-system pods without a PodDisruptionBudget hold their node (as Cluster Autoscaler)",
    )
    spot_max_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description="spot GPUs may make up at most this share of the cluster's GPUs after a scale-up",
    )
    spot_labels: str = Field(
        "node.kubernetes.io/lifecycle=spot,karpenter.sh/capacity-type=spot,eks.amazonaws.com/capacityType=SPOT,"
        "cloud.google.com/gke-spot=true,kubernetes.azure.com/scalesetpriority=spot",
        description="node labels (k=v, comma-separated) that mark a node group as spot",
    )
    node_provision_timeout: float = Field(
        900.0, gt=0, description="seconds a Machine may take to become a Node before its group backs off"
    )

    # --- cost, budgets, waste events (issue 15) --------------------------------------------------------
    cost_interval: float = Field(
        30.0, gt=0, description="seconds between cost-series exports / budget checks"
    )
    prices_file: Path | None = Field(None, description="JSON $/GPU-hour table (default: the bundled one)")
    budgets_configmap: str = Field(
        "gpu-budgets", description="ConfigMap (in `namespace`) holding GPU budgets"
    )
    enforce_budgets: bool = Field(
        False, description="/validate-budget rejects new GPU pods of a namespace or cost centre over budget"
    )
    waste_flag_use: float = Field(0.5, gt=0, le=1, description="GPU use a wasteful pod stays under")
    waste_flag_for: str = Field("5m", description="how long the use must stay under waste_flag_use")
    waste_flag_score: float = Field(50.0, ge=0, le=100, description="waste score a flagged pod exceeds")
    waste_event_interval: float = Field(3600.0, ge=0, description="seconds between waste Events on one pod")

    # --- high availability and binder mode (issue 16) --------------------------------------------------
    leader_election: bool = Field(
        True,
        description="with a live cluster, replicas elect one leader (coordination.k8s.io Lease) to run the "
        "background loops; off: every replica runs them (keep one replica then)",
    )
    leader_election_lease: str = Field("gpu-autoscaler", description="name of the Lease, in `namespace`")
    leader_election_identity: str | None = Field(
        None, description="this replica's holder identity (default: hostname and a random suffix)"
    )
    leader_election_lease_duration: float = Field(10.0, gt=0, description="seconds a Lease is valid")
    leader_election_renew_deadline: float = Field(
        7.0, gt=0, description="seconds the leader keeps acting without a successful renewal"
    )
    leader_election_retry_period: float = Field(2.0, gt=0, description="seconds between Lease polls")

    @model_validator(mode="after")
    def _leader_election_timing(self) -> Settings:
        from app.leader import LeaseTiming

        LeaseTiming(
            self.leader_election_lease_duration,
            self.leader_election_renew_deadline,
            self.leader_election_retry_period,
        )
        return self

    # --- console (issue 17) ----------------------------------------------------------------------------
    console_enabled: bool = Field(True, description="serve the web console at /ui")
    console_refresh_seconds: float = Field(
        5.0, ge=0.5, le=3600, description="seconds between an open console page's checks for changes"
    )
    console_cost_interval: float = Field(
        60.0, ge=1, le=86400, description="seconds between recomputations of the console's cost and savings"
    )

    @field_validator("tls_cert", "tls_key", "config", "prices_file", "tls_client_ca")
    @classmethod
    def _file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"file not found: {value}")
        return value

    @field_validator("spot_labels")
    @classmethod
    def _key_value_list(cls, value: str) -> str:
        for item in (p.strip() for p in value.split(",")):
            if item and ("=" not in item or not item.split("=", 1)[0].strip()):
                raise ValueError(f"{item!r} is not key=value")
        return value

    @field_validator("mig_config")
    @classmethod
    def _mig_config_file(cls, value: Path | None) -> Path | None:
        if value is None:
            return value
        if not value.is_file():
            raise ValueError(f"file not found: {value}")
        from app.gpu.migparted import MigConfigError, parse_mig_config

        try:
            parse_mig_config(value.read_text(), str(value))
        except MigConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("mig_target_mix")
    @classmethod
    def _mix(cls, value: str) -> str:
        from app.mig.config import parse_mix

        parse_mix(value)
        return value

    @field_validator("mig_node_selector", "sharing_node_selector")
    @classmethod
    def _selector(cls, value: str) -> str:
        from app.cluster.selectors import parse_selector

        parse_selector(value)
        return value

    @field_validator("mig_config_configmap", "sharing_configmap")
    @classmethod
    def _configmap_ref(cls, value: str) -> str:
        if value and value.count("/") != 1:
            raise ValueError(f"expected NAMESPACE/NAME, got {value!r}")
        return value

    @field_validator("history_window", "waste_window", "waste_flag_for")
    @classmethod
    def _prometheus_duration(cls, value: str) -> str:
        """Checked here, not by the first query an hour later: Prometheus durations (`90s`, `1h30m`, `7d`)."""
        m = _DURATION.fullmatch(value)
        if m is None or not any(int(g[:-2] if g.endswith("ms") else g[:-1]) for g in m.groups() if g):
            raise ValueError("not a Prometheus duration above zero, such as 30m, 1h or 7d")
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        if self.topology_weight + self.resource_weight + self.balance_weight <= 0:
            raise ValueError("topology_weight + resource_weight + balance_weight must be > 0")
        if self.history_timeout_seconds >= self.webhook_budget_seconds:
            raise ValueError("history_timeout_seconds must be < webhook_budget_seconds")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("tls_client_ca needs tls_cert and tls_key (mutual TLS is TLS)")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _YamlSource(settings_cls, _YAML_DATA.get("data", {}))


_YAML_DATA: dict[str, dict[str, Any]] = {}


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SettingsError(f"config: file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SettingsError(f"config: {path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise SettingsError(f"config: {path} must hold a mapping of setting names to values")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def load_settings(overrides: dict[str, Any] | None = None) -> Settings:
    """Build settings from flags (`overrides`, None values ignored), env and the optional YAML file.

    Raises SettingsError with a one-line reason naming the setting.
    """
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    import os

    config_path = given.get("config") or os.environ.get(ENV_PREFIX + "CONFIG")
    _YAML_DATA["data"] = _read_yaml(Path(config_path)) if config_path else {}
    try:
        return Settings(**given)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        value = err.get("input")
        shown = f" (got {value!r})" if not isinstance(value, dict) else ""
        where = f"invalid setting {loc}" if loc else "invalid settings"
        raise SettingsError(f"{where}: {msg}{shown}") from exc
    finally:
        _YAML_DATA.pop("data", None)

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
    autoscaler_write_status: bool = Field(False, description="patch VariantAutoscaling status each cycle")

    # --- operations: waste scoring, operator CLI ------------------------------------------------------
    waste_interval: float = Field(60.0, gt=0, description="seconds between waste-scoring cycles")
    waste_window: str = Field("1h", description="Prometheus range the DCGM use is averaged over")

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

    # --- MIG layout and GPU-sharing controllers (issue 13) ---------------------------------------------

    # --- node autoscaling through Cluster API (issue 14) -----------------------------------------------

    # --- cost, budgets, waste events (issue 15) --------------------------------------------------------

    # --- high availability and binder mode (issue 16) --------------------------------------------------

    # --- console (issue 17) ----------------------------------------------------------------------------

    @field_validator("tls_cert", "tls_key", "config", "tls_client_ca")
    @classmethod
    def _file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"file not found: {value}")
        return value

    @field_validator("history_window", "waste_window")
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

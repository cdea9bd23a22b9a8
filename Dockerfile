# gpu-autoscaler: one image for `serve` (extender + webhook + autoscaler) and the CLI.
# Build: make image   (docker build -t gpu-autoscaler:dev .)
FROM python:3.11-slim AS build
WORKDIR /src
RUN pip install --no-cache-dir --upgrade pip
COPY pyproject.toml README.md ./
COPY app ./app
COPY extender ./extender
COPY webhook ./webhook
COPY certs ./certs
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN groupadd --gid 65532 gpu-autoscaler \
    && useradd --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin gpu-autoscaler
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["gpu-autoscaler"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8443"]

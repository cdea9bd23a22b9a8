"""`gpu-autoscaler certs`: CA + serving certificate, and the webhook configuration with its caBundle."""

from __future__ import annotations

import argparse
import base64
import string
from pathlib import Path
from typing import Any

from app.cli import CliError
from certs.generate import CertBundle, write_atomic, write_certs

TEMPLATE = Path(__file__).resolve().parents[1] / "manifests" / "webhook" / "mutatingwebhookconfiguration.yaml"
OUTPUT_NAME = "mutatingwebhookconfiguration.yaml"


def register(sub: Any) -> None:
    p = sub.add_parser(
        "certs", help="create the webhook CA and serving certificate, render the webhook config"
    )
    p.add_argument("--service", required=True, help="Service name the API server calls")
    p.add_argument("--namespace", required=True, help="namespace of that Service")
    p.add_argument(
        "--out", required=True, type=Path, help="folder for ca.crt, ca.key, tls.crt, tls.key, YAML"
    )
    p.add_argument("--dns", action="append", default=[], help="extra DNS SAN (repeatable)")
    p.add_argument("--ip", action="append", default=[], help="IP SAN, e.g. 127.0.0.1 for local tests")
    p.add_argument("--days", type=int, default=365, help="serving certificate validity (default 365)")
    p.add_argument("--new-ca", action="store_true", help="replace the CA in --out instead of reusing it")
    p.add_argument("--template", type=Path, default=TEMPLATE, help="MutatingWebhookConfiguration template")
    p.set_defaults(func=run)


def render_webhook_config(template: Path, bundle: CertBundle, service: str, namespace: str) -> str:
    """The template with ${SERVICE}, ${NAMESPACE} and ${CA_BUNDLE} (base64 of the CA PEM) filled in."""
    return string.Template(template.read_text()).substitute(
        SERVICE=service, NAMESPACE=namespace, CA_BUNDLE=base64.b64encode(bundle.ca_pem).decode()
    )


def run(args: argparse.Namespace) -> int:
    import ipaddress

    if args.days <= 0:
        raise CliError("--days must be > 0")
    for ip in args.ip:
        try:
            ipaddress.ip_address(ip)
        except ValueError as exc:
            raise CliError(f"--ip {ip!r} is not an IP address") from exc
    if not args.template.is_file():
        raise CliError(f"--template {args.template}: no such file")
    try:
        bundle = write_certs(
            args.out, args.service, args.namespace, args.dns, args.ip, args.days, args.new_ca
        )
    except OSError as exc:
        raise CliError(f"--out {args.out}: {exc.strerror or exc}") from exc
    config = render_webhook_config(args.template, bundle, args.service, args.namespace)
    write_atomic(args.out / OUTPUT_NAME, config.encode())
    print(f"wrote {bundle.ca_cert}, {bundle.cert}, {bundle.key} and {args.out / OUTPUT_NAME}")
    print(f"serve with: gpu-autoscaler serve --tls-cert {bundle.cert} --tls-key {bundle.key}")
    return 0

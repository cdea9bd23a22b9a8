"""`gpu-autoscaler certs`: CA + serving certificate, and the webhook configuration with its caBundle."""

from __future__ import annotations

import argparse
import base64
import string
from pathlib import Path
from typing import Any

import yaml

from app.cli import CliError
from certs.generate import CertBundle, write_atomic, write_certs

#: shipped inside the package (an installed wheel has no repository around it); the same file as
#: manifests/webhook/mutatingwebhookconfiguration.yaml (a test keeps them identical)
TEMPLATE = Path(__file__).resolve().parent / "mutatingwebhookconfiguration.yaml"
OUTPUT_NAME = "mutatingwebhookconfiguration.yaml"
#: the budget admission webhook (docs/cost.md), rendered beside it; manifests/webhook/ holds the same file
BUDGET_TEMPLATE = Path(__file__).resolve().parent / "budget-validatingwebhookconfiguration.yaml"
WEBHOOK_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")


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
    """The MutatingWebhookConfiguration of `template` with every webhook's `clientConfig` pointing at
    `service`.`namespace` and trusting the CA (`caBundle`, base64 of its PEM). A template may also use the
    placeholders ${SERVICE}, ${NAMESPACE} and ${CA_BUNDLE}."""
    ca_bundle = base64.b64encode(bundle.ca_pem).decode()
    text = string.Template(template.read_text()).safe_substitute(
        SERVICE=service, NAMESPACE=namespace, CA_BUNDLE=ca_bundle
    )
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CliError(f"--template {template}: not valid YAML: {str(exc).splitlines()[0]}") from exc
    hooks = config.get("webhooks") if isinstance(config, dict) else None
    if not isinstance(hooks, list) or not hooks or config.get("kind") not in WEBHOOK_KINDS:
        raise CliError(f"--template {template}: not a MutatingWebhookConfiguration with webhooks")
    for hook in hooks:
        client = hook.setdefault("clientConfig", {})
        client.setdefault("service", {}).update(name=service, namespace=namespace)
        client["caBundle"] = ca_bundle
    header = f"# rendered by `gpu-autoscaler certs --service {service} --namespace {namespace}`\n"
    return header + yaml.safe_dump(config, sort_keys=False, width=110)


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
    budget = render_webhook_config(BUDGET_TEMPLATE, bundle, args.service, args.namespace)
    write_atomic(args.out / BUDGET_TEMPLATE.name, budget.encode())
    print(
        f"wrote {bundle.ca_cert}, {bundle.cert}, {bundle.key}, {args.out / OUTPUT_NAME} and "
        f"{args.out / BUDGET_TEMPLATE.name}"
    )
    print(f"serve with: gpu-autoscaler serve --tls-cert {bundle.cert} --tls-key {bundle.key}")
    return 0

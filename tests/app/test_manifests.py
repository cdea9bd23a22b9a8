"""The manifests install as written: every kustomization renders (real `kubectl kustomize`), every object is
valid against the Kubernetes schemas of the versions we document (and the vendored CRD schemas of the
Prometheus Operator, KEDA, cert-manager and Cluster API kinds), and the objects agree with the code and with
each other (flags, RBAC per call site, selectors, ports, TLS names, scheduler configuration in the docs).

Other capabilities add manifests under manifests/: nothing here names their files; a new folder only has to be
a kustomization reached from manifests/kustomization.yaml (or an entry point listed below).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from app import __version__
from app.cli import build_parser
from app.cluster.kinds import REGISTRY, WATCHED
from certs.generate import service_dns_names

REPO = Path(__file__).resolve().parents[2]
ROOT = REPO / "manifests"
CRD_FIXTURES = REPO / "tests" / "fixtures" / "crds"
#: the Kubernetes versions docs/deploy.md documents (validated with kubernetes-validate's bundled schemas)
K8S_VERSIONS = ("1.29", "1.31", "1.33", "1.35", "1.37")
#: kustomizations applied on their own (docs/deploy.md says when); everything else hangs off manifests/
ENTRY_POINTS = (".", "cert-manager", "monitoring", "scheduler/second-scheduler", "agent", "mig")
#: kinds newer than the oldest version we document: validated from the version that has them (docs/deploy.md)
MIN_VERSION = {
    ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy"): "1.30",
    ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding"): "1.30",
}
#: folders of plain example/config files, not kustomizations (validated all the same)
EXAMPLE_DIRS = ("autoscaling", "scheduler")
SERVICE_ACCOUNT = ("gpu-autoscaler", "gpu-autoscaler")  # namespace, name of the `serve` process

Obj = dict[str, Any]


# --------------------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------------------
def kubectl() -> str:
    found = shutil.which("kubectl") or shutil.which("kubectl", path=str(Path(sys.executable).parent))
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("kubectl not found: `make kubectl` (scripts/install-kubectl.sh) installs it")
    pytest.skip("kubectl not found (scripts/install-kubectl.sh installs it)")


@functools.cache
def _render(entry: str) -> tuple[Obj, ...]:
    out = subprocess.run(
        [kubectl(), "kustomize", str(ROOT / entry)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, f"kubectl kustomize manifests/{entry}: {out.stderr.strip()}"
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


def rendered(entry: str) -> list[Obj]:
    return list(_render(entry))


def plain_files() -> list[Path]:
    """YAML files of the example folders themselves (their sub-kustomizations are entry points)."""
    return sorted(p for d in EXAMPLE_DIRS for p in (ROOT / d).glob("*.yaml"))


def load(path: Path) -> list[Obj]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def every_object() -> Iterator[tuple[str, Obj]]:
    for entry in ENTRY_POINTS:
        for obj in rendered(entry):
            yield f"kustomize manifests/{entry}", obj
    for path in plain_files():
        for obj in load(path):
            yield path.relative_to(REPO).as_posix(), obj


def find(objs: list[Obj], kind: str, name: str | None = None) -> Obj:
    hits = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(hits) == 1, f"expected one {kind} {name or ''}, found {len(hits)}"
    return hits[0]


# --------------------------------------------------------------------------------------------------
# schemas
# --------------------------------------------------------------------------------------------------
def _closed(schema: Any) -> Any:
    """A CRD's structural schema as the API server applies it with strict field validation (kubectl's
    default): objects with `properties` reject unknown fields unless they preserve them."""
    if isinstance(schema, list):
        return [_closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _closed(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def crd_schemas() -> dict[tuple[str, str], Any]:
    """(apiVersion, kind) -> schema, from the vendored CRDs and our own."""
    out: dict[tuple[str, str], Any] = {}
    for path in sorted(CRD_FIXTURES.glob("*.yaml")) + sorted((ROOT / "crd").glob("*.yaml")):
        for crd in load(path):
            if crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                schema = _closed(version["schema"]["openAPIV3Schema"])
                schema.setdefault("properties", {}).update(
                    apiVersion={"type": "string"}, kind={"type": "string"}, metadata={"type": "object"}
                )
                out[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = schema
    return out


def schema_errors(obj: Obj) -> list[str]:
    key = (obj.get("apiVersion", ""), obj.get("kind", ""))
    if key == ("kubescheduler.config.k8s.io/v1", "KubeSchedulerConfiguration"):
        return []  # a component config, not an API object: checked by the scheduler tests below
    if key in crd_schemas():
        validator = jsonschema.Draft7Validator(crd_schemas()[key])
        return [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(obj)]
    errors = []
    oldest = tuple(int(p) for p in MIN_VERSION.get(key, "0").split("."))
    for version in K8S_VERSIONS:
        if tuple(int(p) for p in version.split(".")) < oldest:
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            return [f"no schema for {key}: vendor its CRD into tests/fixtures/crds/ (see README.md there)"]
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"Kubernetes {version}: {'/'.join(map(str, exc.path))}: {exc.message}")
    return errors


def test_every_manifest_object_is_valid_against_its_schema() -> None:
    seen, failures = 0, []
    for where, obj in every_object():
        seen += 1
        name = f"{where}: {obj.get('kind')} {obj.get('metadata', {}).get('name')}"
        failures += [f"{name}: {e}" for e in schema_errors(obj)]
    assert seen >= 30
    assert not failures, "\n".join(failures)


def test_the_schema_check_can_fail() -> None:
    service = find(rendered("."), "Service")
    typo = {**service, "spec": {**service["spec"], "selectr": service["spec"]["selector"]}}
    assert any("selectr" in e for e in schema_errors(typo))
    monitor = find(rendered("monitoring"), "ServiceMonitor")
    bad = {**monitor, "spec": {**monitor["spec"], "endpoints": [{"port": "https", "tlsConfg": {}}]}}
    assert any("tlsConfg" in e for e in schema_errors(bad))
    assert schema_errors({"apiVersion": "example.com/v1", "kind": "Unknown", "metadata": {"name": "x"}})


def test_certs_output_and_demo_objects_are_valid(tmp_path: Path) -> None:
    from app.cli import main
    from app.cluster.snapshot import demo_snapshot_path

    assert (
        main(
            ["certs", "--service", "gpu-autoscaler", "--namespace", "gpu-autoscaler", "--out", str(tmp_path)]
        )
        == 0
    )
    (hook_config,) = load(tmp_path / "mutatingwebhookconfiguration.yaml")
    assert schema_errors(hook_config) == []
    vas = [
        o for p in demo_snapshot_path().glob("*.yaml") for o in load(p) if o["kind"] == "VariantAutoscaling"
    ]
    assert vas and all(schema_errors(va) == [] for va in vas)


# --------------------------------------------------------------------------------------------------
# the kustomizations list every file
# --------------------------------------------------------------------------------------------------
def _referenced(kdir: Path) -> tuple[set[Path], set[Path]]:
    """(files, folders) a kustomization.yaml names."""
    k = yaml.safe_load((kdir / "kustomization.yaml").read_text())
    names = list(k.get("resources") or []) + list(k.get("components") or [])
    names += [p["path"] for p in k.get("patches") or [] if isinstance(p, dict) and "path" in p]
    for gen in (k.get("configMapGenerator") or []) + (k.get("secretGenerator") or []):
        names += [f.split("=", 1)[-1] for f in gen.get("files") or []]
    files, dirs = set(), set()
    for name in names:
        target = (kdir / name).resolve()
        (dirs if target.is_dir() else files).add(target)
    return files, dirs


def test_kustomizations_list_every_file_and_folder() -> None:
    kdirs = sorted(p.parent for p in ROOT.rglob("kustomization.yaml"))
    problems = []
    reached: set[Path] = set()
    todo = [(ROOT / e).resolve() for e in ENTRY_POINTS]
    while todo:
        d = todo.pop()
        if d in reached:
            continue
        reached.add(d)
        todo += sorted(_referenced(d)[1])
    for kdir in kdirs:
        rel = kdir.relative_to(ROOT).as_posix()
        files, _ = _referenced(kdir)
        for path in sorted(kdir.glob("*.y*ml")):
            if path.name != "kustomization.yaml" and path.resolve() not in files:
                problems.append(f"manifests/{rel}/kustomization.yaml does not list {path.name}")
        if kdir.resolve() not in reached:
            problems.append(
                f"manifests/{rel} is reached from no entry point: list it in manifests/kustomization.yaml"
            )
    for path in sorted(ROOT.rglob("*.y*ml")):
        owner = path.parent.relative_to(ROOT).as_posix()
        if path.parent not in kdirs and owner not in EXAMPLE_DIRS:
            problems.append(f"{path.relative_to(REPO)} is in no kustomization (add one to manifests/{owner})")
    assert not problems, "\n".join(problems)


def test_entry_points_are_documented() -> None:
    deploy = (REPO / "docs" / "deploy.md").read_text()
    for entry in ENTRY_POINTS:
        assert f"manifests/{entry}".rstrip("/.") in deploy, entry


# --------------------------------------------------------------------------------------------------
# first install: image, priority, CRD, HA
# --------------------------------------------------------------------------------------------------
def test_image_is_set_by_the_kustomization_to_this_version() -> None:
    top = yaml.safe_load((ROOT / "kustomization.yaml").read_text())
    (entry,) = [i for i in top["images"] if i["name"] == "gpu-autoscaler"]
    assert entry["newTag"] == __version__, "bump manifests/kustomization.yaml images: with the version"
    dep = find(rendered("."), "Deployment", "gpu-autoscaler")
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == f"{entry['newName']}:{__version__}"
    assert "CustomResourceDefinition" in {o["kind"] for o in rendered(".")}


def test_no_pod_uses_a_system_priority_class_outside_kube_system() -> None:
    for where, obj in every_object():
        tmpl = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
        ns = obj.get("metadata", {}).get("namespace", "")
        assert not (str(tmpl.get("priorityClassName", "")).startswith("system-") and ns != "kube-system"), (
            where
        )


def test_deployment_is_highly_available() -> None:
    objs = rendered(".")
    dep = find(objs, "Deployment", "gpu-autoscaler")
    spec, pod = dep["spec"], dep["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert spec["replicas"] >= 2 and spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pdb = find(objs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    anti = pod["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert anti["podAffinityTerm"]["labelSelector"]["matchLabels"].items() <= labels.items()
    (container,) = pod["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"  # serving, not leading
    probes = [container[p]["httpGet"]["path"] for p in ("livenessProbe", "readinessProbe", "startupProbe")]
    assert "/leaderz" not in probes
    env = {e["name"]: e for e in container["env"]}
    assert (
        env["GPU_AUTOSCALER_LEADER_ELECTION_IDENTITY"]["valueFrom"]["fieldRef"]["fieldPath"]
        == "metadata.name"
    )
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True


def test_deployment_args_are_valid_flags() -> None:
    dep = find(rendered("."), "Deployment", "gpu-autoscaler")
    container = dep["spec"]["template"]["spec"]["containers"][0]
    args = build_parser().parse_args(container["args"])
    assert args.command == "serve" and args.cluster == "kube" and args.tls_cert and args.tls_key
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert Path(args.tls_cert).parent.as_posix() in mounts and Path(args.config).parent.as_posix() in mounts
    settings = find(rendered("."), "ConfigMap", "gpu-autoscaler-settings")
    keys = yaml.safe_load(settings["data"]["settings.yaml"])
    from app.settings import Settings

    assert set(keys) <= set(Settings.model_fields), "unknown setting in the settings ConfigMap"


# --------------------------------------------------------------------------------------------------
# RBAC: grant what the code calls, per service account
# --------------------------------------------------------------------------------------------------
_WRITE = re.compile(r"\.(patch|create|replace|read|scale)\(\s*\"(" + "|".join(REGISTRY) + r")\"")
_POD_SUB = re.compile(r"\.(evict|bind)\((?!\()")  # not socket.bind((host, port))
_VERB = {"patch": "patch", "create": "create", "replace": "update", "read": "get", "scale": "patch"}
#: grants for code that lands separately: remove an entry once a call site shows up in the code
PENDING: dict[tuple[str, str, str], str] = {}

Need = tuple[str, frozenset[str], str]  # (api group, acceptable resources, verb)


def needs_in(text: str, where: str) -> dict[Need, str]:
    """The API calls one source file makes through the cluster view (kinds as literals, per kinds.py)."""
    needs: dict[Need, str] = {}
    for m in _WRITE.finditer(text):
        call, info = m.group(1), REGISTRY[m.group(2)]
        if call == "scale":
            resources = {f"{info.plural}/scale"}
        elif call == "patch" and info.status_subresource:
            resources = {info.plural, f"{info.plural}/status"}  # status alone goes to /status
        else:
            resources = {info.plural}
        needs.setdefault((info.group, frozenset(resources), _VERB[call]), where)
    for m in _POD_SUB.finditer(text):
        sub = "eviction" if m.group(1) == "evict" else "binding"
        needs.setdefault(("", frozenset({f"pods/{sub}"}), "create"), where)
    return needs


def code_needs(paths: list[Path]) -> dict[Need, str]:
    """Every API call the code makes through the cluster view, with where it is."""
    needs: dict[Need, str] = {}
    for path in paths:
        for need, where in needs_in(path.read_text(), path.relative_to(REPO).as_posix()).items():
            needs.setdefault(need, where)
    return needs


def server_code() -> list[Path]:
    return [
        p
        for pkg in ("app", "extender", "webhook", "certs")
        for p in sorted((REPO / pkg).rglob("*.py"))
        if "agent" not in p.relative_to(REPO).parts
    ]


def grants(objs: list[Obj], namespace: str, account: str) -> list[tuple[Obj, str]]:
    """(rule, role kind) of every Role/ClusterRole bound to the service account."""
    roles = {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in objs}
    out = []
    for b in (o for o in objs if o["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        if not any(
            s["kind"] == "ServiceAccount" and s["name"] == account and s.get("namespace") == namespace
            for s in b.get("subjects") or []
        ):
            continue
        ref = b["roleRef"]
        role_ns = b["metadata"].get("namespace", "") if ref["kind"] == "Role" else ""
        role = roles.get((ref["kind"], role_ns, ref["name"]))
        assert role is not None, (
            f"{b['kind']} {b['metadata']['name']} binds a missing {ref['kind']} {ref['name']}"
        )
        out += [(rule, ref["kind"]) for rule in role.get("rules") or []]
    return out


def allowed(rules: list[tuple[Obj, str]], group: str, resources: frozenset[str], verb: str) -> bool:
    return any(
        group in r["apiGroups"] and resources & set(r["resources"]) and verb in r["verbs"] for r, _ in rules
    )


def test_server_rbac_grants_what_the_code_calls_and_nothing_more() -> None:
    objs = rendered(".")
    rules = grants(objs, *SERVICE_ACCOUNT)
    needs = code_needs(server_code())
    for kind in WATCHED:
        info = REGISTRY[kind]
        for verb in ("list", "watch"):
            needs[(info.group, frozenset({info.plural}), verb)] = "app/cluster/kinds.py WATCHED"
    assert ("coordination.k8s.io", frozenset({"leases"}), "update") in needs  # the finder sees the elector
    missing = [
        f"{verb} {group or 'core'}/{'|'.join(sorted(res))} (called in {where})"
        for (group, res, verb), where in needs.items()
        if not allowed(rules, group, res, verb)
    ]
    assert not missing, "grant in manifests/base/rbac-*.yaml:\n" + "\n".join(missing)
    extra = []
    for rule, _ in rules:
        for group in rule["apiGroups"]:
            for res in rule["resources"]:
                for verb in rule["verbs"]:
                    used = any(g == group and res in rs and v == verb for (g, rs, v) in needs)
                    if not used and (group, res, verb) not in PENDING:
                        extra.append(f"{verb} {group or 'core'}/{res}")
    assert not extra, "granted but never called (remove it): " + ", ".join(extra)
    # the Lease lives in our namespace: a Role, limited to its name
    lease_rules = [(r, k) for r, k in rules if "leases" in r["resources"]]
    assert lease_rules and all(k == "Role" for _, k in lease_rules)
    from app.settings import Settings

    default_lease = Settings.model_fields["leader_election_lease"].default
    assert all(
        r.get("resourceNames") == [default_lease] for r, _ in lease_rules if "create" not in r["verbs"]
    )


def test_the_rbac_check_can_fail() -> None:
    objs = rendered(".")
    rules = grants(objs, *SERVICE_ACCOUNT)
    assert not allowed(rules, "", frozenset({"nodes"}), "delete")  # nothing of ours deletes Nodes
    text = 'await ctx.cluster.patch("Namespace", n, "", p)\nawait c.evict(p, ns)\nsock.bind((host, 0))\n'
    needs = needs_in(text, "sample")
    assert set(needs) == {
        ("", frozenset({"namespaces"}), "patch"),
        ("", frozenset({"pods/eviction"}), "create"),
    }
    assert not allowed(rules, "", frozenset({"namespaces"}), "patch")


def test_agent_rbac_grants_what_the_agent_calls() -> None:
    """The agent DaemonSet (manifests/agent/) runs under its own account, which covers its calls."""
    objs = rendered("agent")
    agents = [
        o
        for o in objs
        if o["kind"] == "DaemonSet"
        and (o["spec"]["template"]["spec"]["containers"][0].get("args") or [""])[0] == "agent"
    ]
    assert agents, "manifests/agent/ runs `gpu-autoscaler agent`"
    for ds in agents:
        pod = ds["spec"]["template"]["spec"]
        rules = grants(objs, ds["metadata"]["namespace"], pod.get("serviceAccountName", "default"))
        needs = code_needs(sorted((REPO / "app" / "agent").rglob("*.py")))
        needs[("", frozenset({"nodes"}), "list")] = needs[("", frozenset({"nodes"}), "watch")] = "agent view"
        missing = [f"{v} {g}/{sorted(r)}" for (g, r, v) in needs if not allowed(rules, g, r, v)]
        assert not missing, missing


# --------------------------------------------------------------------------------------------------
# the pieces agree: Service, webhook, ServiceMonitor, certificates, scheduler, docs
# --------------------------------------------------------------------------------------------------
def test_service_webhook_monitor_and_certificate_agree() -> None:
    objs = rendered(".")
    dep = find(objs, "Deployment", "gpu-autoscaler")
    pod = dep["spec"]["template"]
    svc = find(objs, "Service", "gpu-autoscaler")
    ns = svc["metadata"]["namespace"]
    assert svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    (port,) = svc["spec"]["ports"]
    container_ports = {p["name"] for p in pod["spec"]["containers"][0]["ports"]}
    assert port["targetPort"] in container_ports
    tls_secret = next(v["secret"]["secretName"] for v in pod["spec"]["volumes"] if v["name"] == "tls")

    for hook_config in (find(rendered("cert-manager"), "MutatingWebhookConfiguration"),):
        for hook in hook_config["webhooks"]:
            ref = hook["clientConfig"]["service"]
            assert (ref["name"], ref["namespace"], ref["port"]) == ("gpu-autoscaler", ns, port["port"])
            assert hook["failurePolicy"] == "Ignore" and hook["sideEffects"] == "None"
            assert 1 <= hook["timeoutSeconds"] <= 5 and hook["matchConditions"]
        injected = hook_config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    cert = find(rendered("cert-manager"), "Certificate", tls_secret)
    assert injected == f"{ns}/{cert['metadata']['name']}" and cert["spec"]["secretName"] == tls_secret
    assert cert["spec"]["dnsNames"] == service_dns_names(svc["metadata"]["name"], ns)

    monitor = find(rendered("monitoring"), "ServiceMonitor")
    assert monitor["metadata"]["namespace"] == ns
    assert monitor["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == port["name"] and endpoint["scheme"] == "https"
    tls = endpoint["tlsConfig"]
    assert tls["ca"]["secret"] == {"name": tls_secret, "key": "ca.crt"}
    assert tls["serverName"] in service_dns_names(svc["metadata"]["name"], ns)
    annotations = pod["metadata"].get("annotations") or {}
    assert "prometheus.io/scrape" not in annotations  # HTTPS with a private CA: scrape via the ServiceMonitor


def test_webhook_entries_mig_and_sharing_never_overlap() -> None:
    hook, sharing = find(rendered("cert-manager"), "MutatingWebhookConfiguration")["webhooks"]
    for h in (hook, sharing):
        assert h["clientConfig"]["service"]["path"] == "/mutate"
        assert h["admissionReviewVersions"] == ["v1"]
    assert hook["namespaceSelector"]["matchLabels"] == {"gpu-autoscaler.io/mig-rewrite": "enabled"}
    # the sharing entry takes the namespaces the MIG entry does not: never both for one pod
    assert sharing["namespaceSelector"]["matchLabels"] == {"gpu-autoscaler.io/sharing": "enabled"}
    (expr,) = sharing["namespaceSelector"]["matchExpressions"]
    assert expr == {"key": "gpu-autoscaler.io/mig-rewrite", "operator": "NotIn", "values": ["enabled"]}


def test_webhook_templates_in_the_package_are_the_manifests() -> None:
    from certs.cli import BUDGET_TEMPLATE, TEMPLATE

    for template in (TEMPLATE, BUDGET_TEMPLATE):
        manifest = (ROOT / "webhook" / template.name).read_text()
        assert template.read_text() == manifest, f"copy manifests/webhook/{template.name} to certs/"


def scheduler_configs() -> dict[str, Obj]:
    second = next(o for o in rendered("scheduler/second-scheduler") if o["kind"] == "ConfigMap")
    return {
        "manifests/scheduler/kube-scheduler-config.yaml": load(
            ROOT / "scheduler" / "kube-scheduler-config.yaml"
        )[0],
        "manifests/scheduler/second-scheduler": yaml.safe_load(second["data"]["config.yaml"]),
    }


def test_scheduler_configurations_call_the_extender_alike() -> None:
    svc = find(rendered("."), "Service", "gpu-autoscaler")
    names = service_dns_names(svc["metadata"]["name"], svc["metadata"]["namespace"])
    blocks = {where: cfg["extenders"] for where, cfg in scheduler_configs().items()}
    first = next(iter(blocks.values()))
    assert all(b == first for b in blocks.values()), "the extenders blocks differ: " + ", ".join(blocks)
    (ext,) = first
    assert ext["urlPrefix"] == f"https://{names[2]}:{svc['spec']['ports'][0]['port']}"
    assert ext["tlsConfig"]["serverName"] in names and ext["tlsConfig"]["caFile"]
    assert (ext["filterVerb"], ext["prioritizeVerb"]) == ("filter", "prioritize")
    assert ext["weight"] > 0 and ext["nodeCacheCapable"] is True and ext["ignorable"] is True
    resources = [m["name"] for m in ext["managedResources"]]
    assert len(resources) == len(set(resources)) and "nvidia.com/gpu" in resources
    for profile in ("1g.10gb", "2g.20gb", "3g.40gb", "1g.10gb.me", "7g.80gb", "1g.12gb"):
        assert f"nvidia.com/mig-{profile}" in resources
    second = scheduler_configs()["manifests/scheduler/second-scheduler"]
    assert second["profiles"][0]["schedulerName"] != "default-scheduler"
    assert second["leaderElection"]["resourceName"] != "kube-scheduler"
    dep = find(rendered("scheduler/second-scheduler"), "Deployment")
    mounts = {m["mountPath"] for m in dep["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]}
    assert Path(ext["tlsConfig"]["caFile"]).parent.as_posix() in mounts


def test_scheduling_doc_shows_the_shipped_extender_configuration() -> None:
    doc = (REPO / "docs" / "scheduling.md").read_text()
    section = doc.split("## Configure kube-scheduler", 1)[1]
    snippet = yaml.safe_load(section.split("```yaml", 1)[1].split("```", 1)[0])
    (shown,) = snippet["extenders"]
    (shipped,) = scheduler_configs()["manifests/scheduler/kube-scheduler-config.yaml"]["extenders"]
    for key, value in shown.items():
        if key == "managedResources":
            assert {m["name"] for m in value} <= {m["name"] for m in shipped[key]}
        else:
            assert value == shipped[key], (
                f"docs/scheduling.md shows {key}: {value}, the manifest {shipped[key]}"
            )
    assert set(shipped) - {"managedResources"} <= set(shown), "show every field of the shipped block"


# --------------------------------------------------------------------------------------------------
# Prometheus rules
# --------------------------------------------------------------------------------------------------
def exported_series() -> set[str]:
    """Every series name the service can export (component modules import their metrics)."""
    from app.main import default_components
    from app.metrics import REGISTRY as METRICS
    from app.settings import Settings

    for factory in default_components():
        factory(Settings())
    names = set()
    for family in METRICS.collect():
        names.add(family.name)
        suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created")}
        names.update(family.name + s for s in suffixes.get(family.type, ()))
    return names


def rule_groups() -> list[Obj]:
    return [g for o in every_object() if o[1]["kind"] == "PrometheusRule" for g in o[1]["spec"]["groups"]]


def test_alerts_use_metrics_the_service_exports() -> None:
    """Every series an alert or record reads is exported by the service, recorded by a rule, or DCGM's."""
    recorded = {r["record"] for g in rule_groups() for r in g["rules"] if "record" in r}
    exported = exported_series() | recorded | {"up"}
    known_outside = re.compile(r"^DCGM_FI_\w+$")  # dcgm-exporter's, read by the waste and cost rules
    for group in rule_groups():
        for rule in group["rules"]:
            expr = re.sub(
                r'"[^"]*"|\{[^}]*\}|\[[^\]]*\]|\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)',
                "",
                rule["expr"],
            )
            words = {w for w in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr) if not known_outside.match(w)}
            unknown = {w for w in words if w not in exported and w not in PROMQL_WORDS}
            assert not unknown, f"{rule.get('alert') or rule.get('record')}: unknown series {sorted(unknown)}"


#: PromQL functions, aggregations and keywords (not series names)
PROMQL_WORDS = {
    "absent", "sum", "rate", "increase", "histogram_quantile", "min", "max", "avg", "count", "by", "and",
    "or", "unless", "le", "bool", "offset", "vector", "scalar", "time", "clamp_min", "clamp_max",
    "avg_over_time", "max_over_time", "min_over_time", "sum_over_time", "count_over_time", "last_over_time",
    "predict_linear", "days_in_month", "day_of_month", "hour", "timestamp", "label_replace", "group_left",
    "group_right", "on", "ignoring", "without", "topk", "bottomk", "abs", "ceil", "floor", "round", "deriv",
    "delta", "idelta", "irate", "resets", "changes", "sort", "sort_desc", "absent_over_time", "e", "inf",
    "minute", "month", "year", "day_of_week", "day_of_year", "quantile_over_time", "stddev_over_time",
}  # fmt: skip


def test_promtool_accepts_the_rules(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool missing: scripts/install-prometheus.sh installs it")
        pytest.skip("promtool missing")
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": rule_groups()}))
    out = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr

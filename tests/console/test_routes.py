"""The console through the real app on the demo cluster: page, live sections, JSON, GPU details, assets,
the plans of controllers other issues build (fake components giving their describe() shapes), escaping."""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.console.component import ConsoleComponent
from app.main import ComponentFactory, create_app, default_components
from app.settings import Settings
from extender.demo import _pod, schedule
from tests.console.conftest import COST_PLAN, MIG_PLAN, NODESCALE_PLAN, FakePlan
from tests.extender.conftest import make_node, write_snapshot

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

DEMO_CELLS = 8 + 8 + 8 + 8 + 4 + 4 + 4  # 4 DGX-like nodes, 2 L40S nodes, the MIG node's 4 GPUs


def _client(extra: list[ComponentFactory] | None = None, **settings: Any) -> TestClient:
    app = create_app(Settings(cluster="demo", **settings), components=[*default_components(), *(extra or [])])
    return TestClient(app)


@pytest.fixture
def client() -> Iterator[TestClient]:
    with _client() as c:
        c.app.state.ctx.components["console"].money.wait()  # type: ignore[attr-defined]
        yield c


def console(c: TestClient) -> ConsoleComponent:
    comp: ConsoleComponent = c.app.state.ctx.components["console"]  # type: ignore[attr-defined]
    return comp


class Page(HTMLParser):
    """Element counts and attributes, to check the page's structure without a browser."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.cells: list[dict[str, str | None]] = []
        self.row = ""
        self.ids: list[str] = []
        self.roles: list[str] = []
        self.scripts: list[dict[str, str | None]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.append(str(a["id"]))
        if a.get("role"):
            self.roles.append(str(a["role"]))
        if a.get("role") == "row":
            self.row = str(a.get("data-node"))
        if a.get("role") == "gridcell" and "g" in str(a.get("class", "")).split():
            self.cells.append({**a, "data-node": self.row})
        if tag == "script":
            self.scripts.append(a)


def test_page_renders_the_demo_cluster(client: TestClient) -> None:
    r = client.get("/ui")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "no-store"
    page = Page(r.text)
    assert len(page.cells) == DEMO_CELLS
    assert all(c["aria-label"] for c in page.cells)  # every GPU has a text alternative
    nodes = {c["data-node"] for c in page.cells}
    assert nodes == {"dgx-h100-0", "dgx-h100-1", "hgx-a100-0", "hgx-a100-1", "l40s-0", "l40s-1", "a100-mig-0"}
    assert len(page.ids) == len(set(page.ids)), "ids are unique"
    assert {"grid", "row", "rowheader", "gridcell", "status", "search"} <= set(page.roles)
    # the demo's own pods: llama (1 GPU) and qwen (2) on dgx-h100-0's GPUs 0-2 (the ones the agent marks
    # allocated; which pod has which is the extender's accounting), the MIG notebook on a100-mig-0's GPU 0
    held = {(c["data-node"], c["data-gpu"]): c.get("data-pods") or "" for c in page.cells}
    on_h100 = [str(held[("dgx-h100-0", str(g))]).rsplit("-", 2)[0] for g in range(4)]
    assert sorted(on_h100) == [
        "",
        "inference/llama-8b-h100",
        "inference/qwen-32b-h100",
        "inference/qwen-32b-h100",
    ]
    assert held[("dgx-h100-0", "3")] == ""
    assert held[("a100-mig-0", "0")] == "notebooks/nb-carol-0"
    assert "NVLink NV18 island 1" in r.text and "no NVLink" in r.text
    assert next(str(s["src"]) for s in page.scripts if s.get("src")).startswith("/ui/static/console.js?v=")
    assert "<script>" not in r.text  # no inline script: the CSP forbids it
    # the MIG, sharing, node-scaling and cost components run in this app: their plans have a section
    assert 'href="#plans-h"' in r.text


def _rows(page_html: str) -> dict[str, str]:
    return dict(re.findall(r'<div class="row" role="row" data-node="([^"]+)" data-d="([^"]+)"', page_html))


def test_sections_return_only_what_changed_and_a_new_placement_shows(client: TestClient) -> None:
    first = client.get("/ui/sections").json()
    digests = {k: v["hash"] for k, v in first["sections"].items()}
    assert set(digests) == {"summary", "map", "decisions", "plans", "money"}
    assert all(v["html"] is not None for v in first["sections"].values())
    assert len(first["grid"]["order"]) == 7 and set(first["grid"]["rows"]) == set(first["grid"]["order"])
    rows = _rows(client.get("/ui").text)
    assert list(rows) == first["grid"]["order"]
    # the other components' first cycles (plans, cost) may still be landing: poll until the page is still
    for _ in range(100):
        poll = {"have": list(digests.values()), "rows": rows}
        same = client.post("/ui/sections", json=poll).json()
        if all(v["html"] is None for v in same["sections"].values()) and same["grid"]["rows"] == {}:
            break
        digests.update({k: v["hash"] for k, v in same["sections"].items()})
        rows = _rows(client.get("/ui").text)
        time.sleep(0.05)
    else:
        pytest.fail("the console never settled: a section changes on every poll")
    # kube-scheduler places a new pod through the extender: its node's row and the decisions change
    names = [n["metadata"]["name"] for n in client.app.state.ctx.cluster.list("Node")]  # type: ignore[attr-defined]
    chosen = schedule(client, _pod("fresh-train", gpus=2), names).chosen
    assert chosen is not None
    after = client.post("/ui/sections", json=poll).json()
    assert after["sections"]["decisions"]["html"] is not None
    assert "ml-team/fresh-train" in after["sections"]["decisions"]["html"]
    for name, section in after["sections"].items():  # unchanged sections are not resent
        assert (section["html"] is None) == (section["hash"] == digests[name]), name
    changed = after["grid"]["rows"]
    assert len(changed) == 1 and "ml-team/fresh-train" in next(iter(changed.values()))


def test_large_maps_paint_their_first_rows_and_send_the_rest_to_the_script(client: TestClient) -> None:
    console(client).first_rows = 3
    html = client.get("/ui").text
    rows = _rows(html)
    assert len(rows) == 3 and 'id="more"' in html and "/ui?all=1" in html
    rest = client.post("/ui/sections", json={"rows": rows}).json()["grid"]
    assert len(rest["order"]) == 7 and set(rest["rows"]) == set(rest["order"]) - set(rows)
    everything = client.get("/ui", params={"all": "1"}).text
    assert len(_rows(everything)) == 7 and 'id="more"' not in everything
    filtered = client.get("/ui", params={"product": "NVIDIA L40S"}).text
    assert len(_rows(filtered)) == 2 and 'id="more"' not in filtered  # 2 rows fit in the first 3


@pytest.mark.parametrize("body", [b"[1, 2]", b"{not json", b'{"rows": [1]}', b" " * (4 * 1024 * 1024 + 1)])
def test_a_malformed_poll_is_a_400(client: TestClient, body: bytes) -> None:
    r = client.post("/ui/sections", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"].startswith("body")


def test_data_gpu_details_and_assets(client: TestClient) -> None:
    data = client.get("/ui/data").json()
    assert data["summary"]["nodes"] == 7 and data["summary"]["gpus"] == DEMO_CELLS
    assert data["money"]["namespaces"], "the point-in-time cost report fills the cost table"
    gpu = client.get("/ui/gpu", params={"node": "hgx-a100-0", "gpu": "0"})
    assert gpu.status_code == 200 and "ml-training/bert-pretrain-0" in gpu.text and "NVLink NV12" in gpu.text
    assert client.get("/ui/gpu", params={"node": "hgx-a100-0", "gpu": "9"}).status_code == 404
    assert client.get("/ui/gpu", params={"node": "nope", "gpu": "0"}).status_code == 404
    js = client.get("/ui/static/console.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert "max-age" in js.headers["cache-control"]
    assert client.get("/ui/static/console.css").headers["content-type"].startswith("text/css")
    assert client.get("/ui/static/nope.js").status_code == 404
    assert client.get("/ui/static/..%2Fcomponent.py").status_code == 404


def test_a_decision_opens_as_a_fragment_or_a_page(client: TestClient) -> None:
    names = [n["metadata"]["name"] for n in client.app.state.ctx.cluster.list("Node")]  # type: ignore[attr-defined]
    schedule(client, _pod("wide", gpus=4), names)
    key = next(p["key"] for p in client.get("/ui/data").json()["placements"] if p["pod"] == "ml-team/wide")
    page = client.get("/ui").text
    assert f'data-key="{key}"' in page and "ui/decision?key=" in page and 'class="scores"' not in page
    frag = client.get("/ui/decision", params={"key": key, "fragment": "1"})
    assert frag.status_code == 200 and 'class="scores"' in frag.text and "<html" not in frag.text
    assert "Filtered out" in frag.text and "node has no whole GPUs" in frag.text
    full = client.get("/ui/decision", params={"key": key})
    assert "<html" in full.text and "ml-team/wide asks 4 GPUs" in full.text and 'class="scores"' in full.text
    assert client.get("/ui/decision", params={"key": "gone"}).status_code == 404
    moved = client.get("/ui/", params={"product": "x"}, follow_redirects=False)
    assert moved.status_code == 307 and moved.headers["location"] == "/ui?product=x"


def test_filters_in_the_query_string(client: TestClient) -> None:
    page = Page(client.get("/ui", params={"product": "NVIDIA L40S"}).text)
    assert {c["data-node"] for c in page.cells} == {"l40s-0", "l40s-1"}
    page = Page(client.get("/ui", params={"namespace": "ml-training"}).text)
    assert {c["data-node"] for c in page.cells} == {"hgx-a100-0"}
    dim = [c for c in page.cells if "dim" in str(c["class"]).split()]
    assert len(dim) == 4  # the node's 4 GPUs that ml-training does not hold


def test_large_responses_are_gzipped(client: TestClient) -> None:
    r = client.get("/ui", headers={"Accept-Encoding": "gzip"})
    assert r.headers.get("content-encoding") == "gzip" and "GPU map" in r.text
    assert "content-encoding" not in client.get("/ui", headers={"Accept-Encoding": "identity"}).headers


def test_plans_of_other_controllers_render_from_their_shapes() -> None:
    extra: list[ComponentFactory] = [
        lambda _s: FakePlan("mig", MIG_PLAN),  # type: ignore[arg-type,return-value]
        lambda _s: FakePlan("sharing", {"nodes": [], "unmet": {}}),  # type: ignore[arg-type,return-value]
        lambda _s: FakePlan("nodescale", NODESCALE_PLAN),  # type: ignore[arg-type,return-value]
        lambda _s: FakePlan("cost", COST_PLAN),  # type: ignore[arg-type,return-value]
    ]
    with _client(extra) as c:
        html = c.get("/ui").text
    assert 'href="#plans-h"' in html
    assert "MIG layout controller" in html and "3 pods wait for 3g.40gb" in html and "team/nb-1" in html
    assert "Unmet demand: 2 \u00d7 1g.10gb, 1 \u00d7 3g.40gb" in html
    assert "GPU-sharing controller" in html and "No node needs a change." in html
    assert "Node autoscaler" in html and "h100-pool" in html and "▲ up" in html and "▼ down" in html
    assert "l40s-3" in html and "PDB allows no disruption" in html
    assert "Cost per namespace against budget" in html and "over budget" in html and "112.5%" in html
    assert "Savings per pod (cost controller)" in html and "stop idle" in html


def test_a_failing_describe_is_shown_not_fatal() -> None:
    broken: list[ComponentFactory] = [lambda _s: FakePlan("nodescale", RuntimeError("boom"))]  # type: ignore[arg-type,return-value]
    with _client(broken) as c:
        r = c.get("/ui")
    assert r.status_code == 200 and "nodescale: describe() failed: RuntimeError: boom" in r.text


def test_console_can_be_switched_off() -> None:
    with _client(console_enabled=False) as c:
        assert c.get("/ui").status_code == 404
        assert c.get("/healthz").status_code == 200


def test_names_are_escaped(tmp_path: Path) -> None:
    evil = 'H100"><img src=x onerror=alert(1)><script>alert(1)</script>'
    node = make_node("evil-0", gpus=2, product=evil)  # agent annotation and label agree (else: a bad node)
    node["metadata"]["labels"]["nvidia.com/gpu.product"] = evil
    cluster_file = write_snapshot(tmp_path, [node])
    app = create_app(Settings(cluster=str(cluster_file)))
    with TestClient(app) as c:
        html = c.get("/ui").text
        frag = c.get("/ui/gpu", params={"node": "evil-0", "gpu": "0"}).text
    assert "<img src=x" not in html and "<script>alert" not in html and "<img src=x" not in frag
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_cpu_only_nodes_and_an_empty_cluster(tmp_path: Path) -> None:
    cpu = make_node("cpu-0", gpus=0, annotate=False)
    app = create_app(Settings(cluster=str(write_snapshot(tmp_path, [cpu]))))
    with TestClient(app) as c:
        html = c.get("/ui").text
    assert "No GPU nodes in the extender's view yet." in html and 'data-node="cpu-0"' not in html


def test_only_changed_rows_are_rebuilt(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.console import component as comp_mod

    built: list[str] = []
    real: Callable[..., Any] = comp_mod.node_row
    monkeypatch.setattr(
        comp_mod, "node_row", lambda node, *a, **k: built.append(node.name) or real(node, *a, **k)
    )
    console(client)._rows.clear()
    client.get("/ui/sections")
    assert len(built) == 7  # every GPU node once
    for _ in range(3):
        client.get("/ui/sections")
    assert len(built) == 7
    pod = copy.deepcopy(_pod("bound-now", gpus=1))
    pod["spec"]["nodeName"] = "dgx-h100-1"
    pod["status"]["phase"] = "Running"
    client.app.state.ctx.cluster.upsert(pod)  # type: ignore[attr-defined]
    rows = client.get("/ui/sections").json()["grid"]["rows"]
    assert built[7:] == ["dgx-h100-1"] and "ml-team/bound-now" in rows["dgx-h100-1"]
    client.get("/ui/sections", params={"namespace": "ml-team"})  # another filter: its own rows
    assert len(built) == 8 + 7


def test_view_model_is_json(client: TestClient) -> None:
    vm = console(client).describe()
    assert json.loads(json.dumps(vm, default=str))["map"]["shown"] == 7
    assert re.fullmatch(r"\d\d:\d\d:\d\d", vm["generated"]["text"])

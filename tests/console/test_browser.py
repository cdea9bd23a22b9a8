"""The console in a real browser: Debian's Chromium driven by Selenium over the demo, served by the real
server on loopback after the demo's acts (every part of the page has something to show).

Skips with one line when Chromium or chromedriver is missing (`scripts/install-chromium.sh`; `make test`
installs them). With CONSOLE_SCREENSHOTS=DIR it writes the screenshots docs/console.md shows into DIR
(`make console-screenshots` refreshes docs/img/); CI leaves the docs alone.
"""

from __future__ import annotations

import copy
import importlib
import io
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from app.cluster.snapshot import SnapshotCluster
from app.demo import DEMO_ACTS, DemoRun
from app.inprocess import free_port, serve_in_thread
from app.main import create_app
from app.settings import Settings
from extender.demo import _pod, schedule
from tests.chromium import binaries, chromium

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

SHOTS = os.environ.get("CONSOLE_SCREENSHOTS", "")
#: the demo's GPUs: 4 eight-GPU nodes, 3 four-GPU L40S nodes (one joins in the MIG act's sharing pool), the
#: MIG node's 4 GPUs, the shared L4 node's 4 (the console act's)
DEMO_CELLS = 4 * 8 + 3 * 4 + 4 + 4
DEMO_NODES = 9


def wait_for(what: str, check: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Poll `check` until truthy; an element swapped out by a live refresh meanwhile counts as "not yet"."""
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except StaleElementReferenceException:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def demo() -> Iterator[tuple[str, httpx.Client, SnapshotCluster, Any]]:
    if binaries() is None:
        pytest.skip("chromium/chromedriver not installed (scripts/install-chromium.sh installs them)")
    cluster = SnapshotCluster()
    cluster.load()
    port = free_port()
    settings = Settings(cluster="demo", port=port, console_refresh_seconds=1)
    app = create_app(settings, cluster=cluster)
    with (
        serve_in_thread(app, "127.0.0.1", port) as base,
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        run = DemoRun(client, cluster, settings, Console(file=io.StringIO(), width=140), app)
        for ref in DEMO_ACTS:
            mod, _, fn = ref.partition(":")
            getattr(importlib.import_module(mod), fn)(run)
        yield base, client, cluster, app


@pytest.fixture(scope="module")
def browser(demo: Any) -> Iterator[Any]:
    with chromium(console_log=True) as driver:
        yield driver


def shot(driver: Any, name: str, element: Any = None) -> None:
    """Write docs/img/<name> when asked to (CONSOLE_SCREENSHOTS=docs/img)."""
    if not SHOTS:
        return
    out = Path(SHOTS)
    out.mkdir(parents=True, exist_ok=True)
    if element is not None:
        element.screenshot(str(out / name))
    else:
        driver.save_screenshot(str(out / name))


def errors(driver: Any) -> list[dict[str, Any]]:
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def loaded_at(driver: Any) -> Any:
    return driver.execute_script("return window.gpuConsole && window.gpuConsole.loadedAt")


def test_the_page_loads_without_console_errors_and_maps_the_demo_gpus(browser: Any, demo: Any) -> None:
    from selenium.webdriver.common.by import By

    base = demo[0]
    browser.get(base + "/ui")
    wait_for("the console script", lambda: loaded_at(browser))
    cells = browser.find_elements(By.CSS_SELECTOR, ".grid [role=gridcell].g")
    assert len(cells) == DEMO_CELLS
    assert all(c.get_attribute("aria-label") for c in cells)
    nodes = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".grid .nn")]
    assert nodes == sorted(
        [
            "a100-mig-0",
            "dgx-h100-0",
            "dgx-h100-1",
            "hgx-a100-0",
            "hgx-a100-1",
            "l4-shared-0",
            "l40s-0",
            "l40s-1",
            "l40s-2",
        ]
    )
    # every state the legend names is on the demo's map, as a whole cell or as a part of one
    for state in ("free", "bound", "assumed", "agent", "unused"):
        alloc = {"bound": "full"}.get(state, state)
        assert browser.find_elements(By.CSS_SELECTOR, f".grid .p.{state}, .grid .g.a-{alloc}"), state
    assert browser.find_elements(By.CSS_SELECTOR, ".grid .g.shared") and browser.find_elements(
        By.CSS_SELECTOR, ".grid .g.mig"
    )
    assert browser.find_elements(By.CSS_SELECTOR, ".grid .g.u-idle"), "utilisation drawn"
    assert len(browser.find_elements(By.CSS_SELECTOR, ".isl.k-nvlink")) == 5
    wait_for(
        "the first live refresh", lambda: browser.execute_script("return window.gpuConsole.refreshes") > 0
    )
    assert "Live" in browser.find_element(By.ID, "live").text
    assert errors(browser) == []
    shot(browser, "console.png")  # the first screen: summary and the top of the map


def test_a_gpu_shows_the_pod_holding_it_by_click_and_by_keyboard(browser: Any, demo: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    cell = browser.find_element(By.CSS_SELECTOR, '.row[data-node="dgx-h100-0"] .g[data-gpu="3"]')
    assert "ml-team/llama-70b-train" in cell.get_attribute("aria-label")
    cell.click()
    details = browser.find_element(By.ID, "gpu-details")
    wait_for("GPU details", lambda: "ml-team/llama-70b-train" in details.text)
    assert "NVLink NV18" in details.text and "4 whole GPUs" in details.text
    # the keyboard: the map is one tab stop; arrows move, Enter opens
    assert cell.get_attribute("tabindex") == "0"
    cell.send_keys(Keys.ARROW_RIGHT)
    focused = browser.switch_to.active_element
    assert focused.get_attribute("data-gpu") == "4" and "ml-team/llama-70b-train" in focused.get_attribute(
        "data-pods"
    )
    focused.send_keys(Keys.ARROW_DOWN, Keys.ENTER)
    wait_for("details of dgx-h100-1 GPU 4", lambda: "dgx-h100-1 · GPU 4" in details.text)
    shared = browser.find_element(By.CSS_SELECTOR, '.row[data-node="l4-shared-0"] .g[data-gpu="0"]')
    shared.click()
    wait_for("the shared GPU's pods", lambda: "inference/whisper-0" in details.text)
    assert "inference/embed-small-0" in details.text and "50% of one GPU" in details.text
    map_panel = browser.find_element(By.CSS_SELECTOR, "section[aria-labelledby=map-h]")
    browser.execute_script("arguments[0].scrollIntoView()", map_panel)
    shot(browser, "console-map.png", map_panel)
    assert errors(browser) == []


def test_a_decision_opens_with_score_parts_and_filter_reasons(browser: Any, demo: Any) -> None:
    from selenium.webdriver.common.by import By

    entry = next(
        d
        for d in browser.find_elements(By.CSS_SELECTOR, ".decisions details")
        if "ml-team/llama-70b-train" in d.find_element(By.TAG_NAME, "summary").text
    )
    assert not entry.find_elements(By.CSS_SELECTOR, "table.scores")  # fetched when opened
    summary = entry.find_element(By.TAG_NAME, "summary")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", summary)
    summary.click()
    wait_for("the score table", lambda: entry.find_elements(By.CSS_SELECTOR, "table.scores"))
    table = entry.find_element(By.CSS_SELECTOR, "table.scores")
    assert table.is_displayed()
    rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert len(rows) == 2 and "chosen" in rows[0].text and "dgx-h100-0" in rows[0].text
    reasons = entry.find_element(By.CSS_SELECTOR, ".reasons").text
    assert "node has no whole GPUs" in reasons and "preemption cannot help" in reasons
    shot(browser, "console-decision.png", entry)
    assert errors(browser) == []


def test_filters_apply_without_a_reload(browser: Any, demo: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    before = loaded_at(browser)
    Select(browser.find_element(By.ID, "f-namespace")).select_by_value("notebooks")

    def shown() -> list[str]:
        return [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".grid .nn")]

    wait_for("the notebooks filter", lambda: shown() == ["a100-mig-0", "l40s-0", "l40s-1"])
    assert browser.current_url.endswith("/ui?namespace=notebooks")
    assert browser.find_elements(By.CSS_SELECTOR, ".grid .g.dim")
    Select(browser.find_element(By.ID, "f-namespace")).select_by_value("")
    wait_for("all nodes again", lambda: len(shown()) == DEMO_NODES)
    assert loaded_at(browser) == before, "no reload"


def test_a_large_map_paints_its_first_rows_then_the_script_brings_the_rest(browser: Any, demo: Any) -> None:
    from selenium.webdriver.common.by import By

    base, client, _, app = demo
    console = app.state.ctx.components["console"]
    console.first_rows = 3
    try:
        page = client.get("/ui").text
        assert page.count('role="row"') == 3 and 'id="more"' in page  # what the browser paints first
        browser.get(base + "/ui")
        wait_for(
            "every row", lambda: len(browser.find_elements(By.CSS_SELECTOR, "#grid > .row")) == DEMO_NODES
        )
        assert browser.execute_script("return window.gpuConsole.rowsReplaced") >= 5  # the script added them
        wait_for("the note gone", lambda: not browser.find_elements(By.ID, "more"))
        names = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#grid .nn")]
        assert names == sorted(names) and len(set(names)) == DEMO_NODES
        assert browser.execute_script("return window.gpuConsole.completeAt") is not None
        assert errors(browser) == []
    finally:
        console.first_rows = 100
        browser.get(base + "/ui")
        wait_for("the console script", lambda: loaded_at(browser))


def test_the_refresh_picks_up_a_new_placement(browser: Any, demo: Any) -> None:
    from selenium.webdriver.common.by import By

    _, client, cluster, _ = demo
    before = loaded_at(browser)
    if not browser.find_elements(By.CSS_SELECTOR, ".decisions details[open]"):
        browser.execute_script("document.querySelector('.decisions details').open = true")
    opened = [
        d.get_attribute("id") for d in browser.find_elements(By.CSS_SELECTOR, ".decisions details[open]")
    ]
    # kube-scheduler places a pod through the extender and the API server binds it
    names = [n["metadata"]["name"] for n in cluster.list("Node")]
    pod = _pod("late-arrival", "ml-team", gpus=2)
    chosen = schedule(client, pod, names).chosen
    assert chosen is not None
    bound = copy.deepcopy(pod)
    bound["spec"]["nodeName"] = chosen
    bound["status"]["phase"] = "Running"
    cluster.upsert(bound)

    def decision_shown() -> bool:
        return bool(
            browser.execute_script(
                "return Array.from(document.querySelectorAll('.decisions summary'))"
                ".some(s => s.textContent.includes('ml-team/late-arrival'))"
            )
        )

    def on_its_node() -> int:
        sel = f'.row[data-node="{chosen}"] .g[data-pods~="ml-team/late-arrival"]'
        return len(browser.find_elements(By.CSS_SELECTOR, sel))

    wait_for("the new decision", decision_shown)
    assert wait_for("the pod on the map", on_its_node) == 2
    assert loaded_at(browser) == before, "updated in place, not reloaded"
    still = [
        d.get_attribute("id") for d in browser.find_elements(By.CSS_SELECTOR, ".decisions details[open]")
    ]
    assert set(opened) <= set(still), "open details survive the refresh"
    assert errors(browser) == []

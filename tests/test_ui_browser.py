"""The web UI in headless Chromium (Debian's, driven by Playwright): log in, upload a
pipeline, start a run with a parameter changed, watch the DAG reach Succeeded, open a
node's logs and an artifact preview, compare two runs of an experiment.

Screenshots of each page go to test-artifacts/ui/. Needs /usr/bin/chromium (`.ci/run`
installs Debian's chromium) and the built UI (`make ui`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
import pytest

pytest_plugins = ["tests.fixtures.server"]

from tests.fixtures.server import (
    PIPELINE_YAML,
    attach_artifact,
    record_metric,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / "test-artifacts" / "ui"
STATIC_INDEX = REPO / "chute" / "server" / "static" / "index.html"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason=f"{CHROMIUM} missing: apt-get install -y chromium"),
    pytest.mark.skipif(not STATIC_INDEX.exists(), reason="UI not built: run `make ui`"),
]


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        pg = context.new_page()
        pg.set_default_timeout(20_000)
        try:
            yield pg
        finally:
            context.close()
            browser.close()


def _shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _api(live):
    return httpx.Client(base_url=live.url + "/api/v1",
                        headers={"Authorization": f"Bearer {live.token}"}, timeout=30)


def _wait_done(client, name: str) -> dict:
    import time

    for _ in range(300):
        doc = client.get(f"/runs/{name}").json()
        if doc["status"]["phase"] in ("Succeeded", "Failed", "Error"):
            return doc
        time.sleep(0.2)
    raise AssertionError(f"{name} did not finish")


def test_login_upload_run_logs_artifact_compare(live_server, page, tmp_path):
    live = live_server
    # -- log in ---------------------------------------------------------------------------
    resp = page.goto(live.url + "/runs")
    assert resp.status == 401
    _shot(page, "01-login")
    page.fill("#token", "not-the-token")
    page.click("button[type=submit]")
    page.wait_for_selector("text=That token is not valid")
    page.fill("#token", live.token)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/runs$"))
    page.wait_for_selector("#runs-table")
    cookies = page.context.cookies()
    session = next(c for c in cookies if c["name"] == "chute_session")
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    _shot(page, "02-runs-empty")

    # -- an experiment --------------------------------------------------------------------
    page.click("header >> text=Experiments")
    page.fill("#experiment-form input[name=name]", "browser-exp")
    page.click("#experiment-form button[type=submit]")
    page.wait_for_selector("tr[data-experiment=browser-exp]")
    _shot(page, "03-experiments")

    # -- upload a pipeline and see its DAG before it runs --------------------------------
    src = tmp_path / "greet.yaml"
    src.write_text(PIPELINE_YAML)
    page.click("header >> text=Pipelines")
    page.set_input_files("#upload-file", str(src))
    page.click("#upload-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/pipelines/[0-9a-f]{32}$"))
    page.wait_for_selector("#pipeline-dag")
    assert page.input_value("#param-message") == "hello"
    assert page.eval_on_selector("#param-mode", "e => [...e.options].map(o => o.value)") == \
        ["fast", "slow"]
    _shot(page, "04-pipeline")

    # -- start a run with a parameter changed; watch it succeed --------------------------
    page.fill("#param-message", "from-the-browser")
    page.select_option("#run-experiment", label="browser-exp")
    page.click("#start-run")
    page.wait_for_url(re.compile(r".*/runs/greet-[a-z0-9]+$"))
    run1 = page.url.rsplit("/", 1)[1]
    page.wait_for_selector("#dag[data-rendered='1']")
    page.wait_for_selector("#run-phase [data-phase=Succeeded]", timeout=60_000)
    page.wait_for_selector(".node-item[data-node-name=second][data-phase=Succeeded]")
    _shot(page, "05-run-succeeded")

    # -- a node's logs ---------------------------------------------------------------------
    page.click(".node-item[data-node-name=first]")
    page.wait_for_selector("#node-panel")
    page.click("#tab-logs")
    # (selectors, not wait_for_function: the page's CSP forbids string evaluation)
    page.locator("#node-logs", has_text="from-the-browser").wait_for()
    _shot(page, "06-node-logs")

    # -- an artifact preview (a CSV output recorded on the node) -------------------------
    csv = tmp_path / "scores.csv"
    csv.write_text("fold,score\n1,0.91\n2,0.88\n")
    attach_artifact(live.app, run1, "first", csv, "scores")
    page.reload()
    page.click(".node-item[data-node-name=first]")
    page.click("#tab-artifacts")
    page.click("li[data-artifact=scores] >> text=preview")
    table = page.wait_for_selector("table[data-preview=csv]")
    assert "0.88" in table.inner_text()
    href = page.get_attribute("li[data-artifact=scores] a", "href")
    assert href.endswith("/scores/download")
    _shot(page, "07-artifact-preview")

    # -- a second run in the experiment, metrics, compare --------------------------------
    with _api(live) as api:
        exp = api.get("/experiments/browser-exp").json()
        pipe = api.get("/pipelines/greet").json()
        r2 = api.post("/runs", json={"pipelineId": pipe["id"], "experimentId": exp["id"],
                                     "parameters": {"mode": "slow"}}).json()
        run2 = r2["metadata"]["name"]
        assert _wait_done(api, run2)["status"]["phase"] == "Succeeded"
    record_metric(live.app, run1, "accuracy", 0.81)
    record_metric(live.app, run2, "accuracy", 0.93)
    record_metric(live.app, run1, "roc", None, "roc",
                  {"fpr": [0, 0.1, 0.4, 1], "tpr": [0, 0.6, 0.9, 1]})
    record_metric(live.app, run2, "confusion", None, "confusion_matrix",
                  {"labels": ["legit", "fraud"], "matrix": [[941, 7], [12, 40]]})
    page.goto(live.url + f"/experiments/{exp['id']}")
    page.wait_for_selector(f"tr[data-run='{run2}']")
    header = page.inner_text("#experiment-runs thead")
    assert "accuracy" in header and "message" in header
    page.check(f"tr[data-run='{run1}'] input.pick")
    page.check(f"tr[data-run='{run2}'] input.pick")
    _shot(page, "08-experiment")
    page.click("#compare-runs")
    page.wait_for_selector("#compare-table tr[data-metric=accuracy]")
    row = page.inner_text("#compare-table tr[data-metric=accuracy]")
    assert "0.8100" in row and "0.9300" in row
    params = page.inner_text("#compare-table")
    assert "from-the-browser" in params and "slow" in params  # each run's own parameters
    page.wait_for_selector(".chart canvas")
    page.wait_for_selector("h3:has-text('ROC')")
    confusion = page.inner_text("table.confusion")
    assert "fraud" in confusion and "941" in confusion
    _shot(page, "09-compare")

    # -- the runs list shows both, filterable by experiment -------------------------------
    page.goto(live.url + "/runs")
    page.wait_for_selector(f"tr[data-run='{run2}']")
    page.select_option("#filter-phase", "Failed")
    page.wait_for_selector(f"tr[data-run='{run2}']", state="detached")
    _shot(page, "10-runs-filtered")


@pytest.mark.parametrize("shape,drawn", [("fanout", 1004), ("chains", 1002)])
def test_thousand_node_run_renders_fast(live_server, page, shape, drawn):
    """The run page of a 1,000-step run draws every node; bench/ui.py measures the time
    (about 0.3-0.6 s here); this guards against regressions with a margin for loaded CI."""
    import sys

    sys.path.insert(0, str(REPO / "bench"))
    from ui import make_run

    make_run(live_server.app.state.ctx.store, "big-run", 1000, shape)
    page.goto(live_server.url + "/login?next=/runs/big-run")
    page.fill("#token", live_server.token)
    page.click("button[type=submit]")
    page.wait_for_selector("#dag[data-rendered='1']", timeout=30_000)
    rendered = page.evaluate("() => window.__chuteRunRendered")
    assert rendered["nodes"] == drawn
    assert rendered["layoutMs"] < 1000, rendered
    assert rendered["ms"] < 5000, rendered
    page.fill(".node-list input", "item(7)." if shape == "chains" else "train(5)")
    first = page.locator(".node-item").first
    first.wait_for()
    assert page.locator(".node-item").count() in (4, 1)
    _shot(page, f"11-run-1000-nodes-{shape}")


SLOW_WORKFLOW = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: slow-}
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - {name: quick, template: quick}
      - {name: slow, template: slow, dependencies: [quick]}
      - {name: skipped, template: quick, dependencies: [quick], when: "1 == 2"}
  - name: quick
    container: {image: alpine, command: [sh, -c, "echo quick"]}
  - name: slow
    container: {image: alpine, command: [sh, -c, "echo start; sleep 3; echo done"]}
"""


def test_run_page_updates_live_without_reloading(live_server, page):
    with _api(live_server) as api:
        resp = api.post("/runs", json={"yaml": SLOW_WORKFLOW})
        assert resp.status_code == 201, resp.text
        name = resp.json()["metadata"]["name"]
    page.goto(live_server.url + f"/login?next=/runs/{name}")
    page.fill("#token", live_server.token)
    page.click("button[type=submit]")
    page.wait_for_selector("#dag[data-rendered='1']")
    page.evaluate("() => { window.__sameDocument = true; }")
    page.wait_for_selector(".node-item[data-node-name=slow][data-phase=Running]",
                           timeout=30_000)
    page.click(".node-item[data-node-name=slow]")
    page.click("#tab-logs")
    page.locator("#node-logs", has_text="start").wait_for()
    _shot(page, "12-run-live-running")
    page.locator("#node-logs", has_text="done").wait_for(timeout=30_000)  # tailing live
    page.wait_for_selector("#run-phase [data-phase=Succeeded]", timeout=60_000)
    page.wait_for_selector(".node-item[data-node-name=slow][data-phase=Succeeded]")
    page.wait_for_selector(".node-item[data-node-name=skipped][data-phase=Skipped]")
    assert page.evaluate("() => window.__sameDocument") is True  # updated in place
    _shot(page, "13-run-live-done")


def test_retry_button_reruns_a_failed_run(live_server, page, tmp_path):
    from tests.test_server_actions import FLAKY

    with _api(live_server) as api:
        resp = api.post("/runs", json={"yaml": FLAKY,
                                       "parameters": {"marker": str(tmp_path / "m")}})
        name = resp.json()["metadata"]["name"]
        assert _wait_done(api, name)["status"]["phase"] == "Failed"
    page.goto(live_server.url + f"/login?next=/runs/{name}")
    page.fill("#token", live_server.token)
    page.click("button[type=submit]")
    page.wait_for_selector("#run-phase [data-phase=Failed]")
    assert page.locator("button.act-suspend").count() == 0  # not offered on a finished run
    _shot(page, "14-run-failed")
    page.click("button.act-retry")
    page.wait_for_selector("#run-phase [data-phase=Succeeded]", timeout=60_000)
    page.wait_for_selector(".node-item[data-node-name=flaky][data-phase=Succeeded]")
    _shot(page, "15-run-retried")

"""The gallery page in a real headless browser: Debian's chromium (/usr/bin/chromium) driven by playwright,
against the shared `hubctl serve` process and against a static `hubctl runs export`. Skips with the reason
when chromium is absent, except under CI=true, where that is a failure (.ci/run installs it)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    missing = None
    if not CHROMIUM.is_file():
        missing = f"{CHROMIUM} is absent (apt-get install -y chromium)"
    else:
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            missing = "the playwright package is absent (pip install playwright; never `playwright install`)"
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the gallery's browser test cannot run under CI: {missing}")
        pytest.skip(missing)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def _page(browser):  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1100, "height": 720})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors  # type: ignore[attr-defined]
    return page


def test_the_gallery_shows_the_runs_and_its_form_makes_a_new_image_that_appears(browser, served, tmp_path):
    from playwright.sync_api import expect

    first = served.post("/v1/generate", {"prompt": "a gallery seed run", "seed": 21, "steps": 2}).json()
    page = _page(browser)
    page.goto(served.url + "/")
    expect(page.locator(f'.thumb[data-run="{first["run_id"]}"]')).to_have_count(1)
    expect(page.locator("#lockinfo")).to_contain_text("demo-sd 1.4")
    before = page.locator(".thumb").count()
    page.fill("#prompt", "made in the browser")
    page.fill("#seed", "77")
    page.fill("#steps", "2")
    page.fill("#images", "2")
    page.click("#generate")
    expect(page.locator("#status")).to_contain_text(re.compile(r"run \d{8}-\d{6}-[0-9a-f]{8}: 2 image"), timeout=120_000)
    new = page.locator(".thumb", has_text="made in the browser")
    expect(new).to_have_count(2)
    assert page.locator(".thumb").count() == before + 2
    new.first.click()
    detail = page.locator("#detail-fields")
    expect(detail).to_contain_text("made in the browser")
    expect(detail).to_contain_text("77")
    expect(detail).to_contain_text("demo-style")  # the LoRA and its hash
    expect(detail).to_contain_text("cpu fp32, attention sdpa")
    # the image shown is the PNG the server holds (it decoded: natural width 64)
    assert page.locator("#detail img").evaluate("img => img.complete && img.naturalWidth") == 64
    page.click("#replay")
    expect(page.locator("#status")).to_contain_text("image identical", timeout=120_000)
    assert page.errors == []  # type: ignore[attr-defined]
    shot = os.environ.get("HUBCTL_GALLERY_SCREENSHOT")
    page.screenshot(path=shot or str(tmp_path / "gallery.png"))


def test_a_static_export_shows_the_same_runs_without_a_server(browser, served, cli, tmp_path, monkeypatch):
    from playwright.sync_api import expect

    res = served.post("/v1/generate", {"prompt": "exported run", "seed": 5, "steps": 2}).json()
    monkeypatch.setenv("HUBCTL_HOME", str(served.home))
    out = tmp_path / "gallery"
    r = cli("runs", "export", str(out), "--json")
    assert r.exit_code == 0, r.output
    page = _page(browser)
    page.goto(out.joinpath("index.html").as_uri())
    thumb = page.locator(f'.thumb[data-run="{res["run_id"]}"]')
    expect(thumb).to_have_count(1)
    assert thumb.locator("img").evaluate("img => img.complete && img.naturalWidth") == 64
    thumb.click()
    expect(page.locator("#detail-fields")).to_contain_text("exported run")
    expect(page.locator("#detail")).to_contain_text(f"hubctl generate --replay {res['run_id']}")
    assert not page.locator("#gen-form").is_visible()
    assert page.errors == []  # type: ignore[attr-defined]

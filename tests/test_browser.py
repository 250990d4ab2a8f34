"""The try-it page and CORS, in a real headless Chromium (Debian's, driven by Playwright)."""

import os
import shutil
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect, sync_playwright

from conftest import ROOT, TUTORIAL_ROW, Server, columns, copy_function_code, field_names, run_train

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Headless as root, and no calls home: this machine's network is closed.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 640, "height": 720})
    page = context.new_page()
    yield page
    context.close()


def open_page(page, url):
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(url)
    expect(page.locator("body[data-ready=true]")).to_be_attached()
    return requested


def test_page_predicts(page, server, metadata, tmp_path):
    requested = open_page(page, server.url)
    for i, name in enumerate(field_names(metadata)):
        field = page.get_by_label(name)
        expect(field).to_have_value(str(TUTORIAL_ROW[name]))
        expect(page.locator(f"label[for={name}]")).to_contain_text(columns(metadata)[i])
    page.get_by_role("button", name="Predict").click()
    expect(page.locator("#class-name")).to_have_text("setosa")
    expect(page.locator(".bar")).to_have_count(3)
    expect(page.locator(".bar-row").first).to_contain_text("setosa")
    expect(page.locator("footer")).to_contain_text(metadata["model_sha256"])
    expect(page.locator("footer")).to_contain_text(f"scikit-learn {metadata['versions']['scikit-learn']}")
    # Self-contained: nothing but the function itself was asked for anything.
    assert {urlsplit(url).netloc for url in requested} == {urlsplit(server.url).netloc}
    page.screenshot(path=os.environ.get("SCREENSHOT") or tmp_path / "page.png", full_page=True)


def test_page_shows_other_classes(page, server):
    open_page(page, server.url)
    for name, value in {"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2, "petal_width": 2.3}.items():
        page.get_by_label(name).fill(str(value))
    page.get_by_role("button", name="Predict").click()
    expect(page.locator("#class-name")).to_have_text("virginica")


def test_page_shows_the_api_error_beside_its_field(page, server):
    open_page(page, server.url)
    page.get_by_label("petal_width").fill("wide")
    page.get_by_role("button", name="Predict").click()
    expect(page.locator("#petal_width-error")).to_have_text("petal_width must be a number, not a string")
    expect(page.get_by_label("petal_width")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#class-name")).to_have_count(0)
    page.get_by_label("petal_width").fill("0.2")
    page.get_by_role("button", name="Predict").click()
    expect(page.locator("#class-name")).to_have_text("setosa")
    expect(page.locator("#petal_width-error")).to_have_text("")


@pytest.fixture(scope="module")
def other_site(tmp_path_factory):
    """A page on another origin (another port) that calls the function with fetch."""
    folder = tmp_path_factory.mktemp("other-site")
    (folder / "index.html").write_text("<!doctype html><title>Another site</title><p>Another site</p>")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(folder)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


FETCH = """async (url) => {
  try {
    const response = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"},
                                       body: JSON.stringify(%s)});
    return (await response.json()).class_name;
  } catch (error) {
    return "blocked";
  }
}""" % str(TUTORIAL_ROW).replace("'", '"')


@pytest.mark.parametrize("allowed, expected", [
    ("*", "setosa"),
    ("{origin}", "setosa"),
    ("https://shop.example.com", "blocked"),
])
def test_fetch_from_another_origin(page, other_site, allowed, expected):
    env = {**os.environ, "ALLOWED_ORIGINS": allowed.format(origin=other_site)}
    function = Server(ROOT / "main.py", env=env).wait_ready()
    try:
        page.goto(f"{other_site}/")
        assert page.evaluate(FETCH, function.url) == expected
    finally:
        function.stop()


@pytest.fixture(scope="module")
def penguins_function(tmp_path_factory):
    import palmerpenguins

    folder = tmp_path_factory.mktemp("penguins")
    palmerpenguins.load_penguins().to_csv(folder / "penguins.csv", index=False)
    assert run_train("--data", folder / "penguins.csv", "--target", "species", "--out", folder).returncode == 0
    copy_function_code(ROOT, folder)
    with Server(folder / "main.py").wait_ready() as function:
        yield function


def test_page_offers_the_categories_and_takes_an_empty_choice_as_null(page, penguins_function):
    open_page(page, penguins_function.url)
    island = page.get_by_label("island")
    expect(island.locator("option")).to_have_text(["(none)", "Biscoe", "Dream", "Torgersen"])
    island.select_option("Biscoe")
    page.get_by_label("sex").select_option("")
    for name, value in {"bill_length_mm": "45.2", "bill_depth_mm": "15.8", "flipper_length_mm": "215",
                        "body_mass_g": "5300"}.items():
        page.get_by_label(name).fill(value)
    page.get_by_role("button", name="Predict").click()
    expect(page.locator("#class-name")).to_have_text("Gentoo")
    page.get_by_label("bill_length_mm").fill("99")
    page.get_by_role("button", name="Predict").click()
    expect(page.locator(".warning")).to_have_text(["bill_length_mm 99.0 is above the training range 32.1 to 59.6"])

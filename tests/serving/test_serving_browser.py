"""The live page of `llada-serve` (/demo) in a real headless Chromium, driven with Selenium.

Chromium and its driver come from Debian (`apt-get install chromium chromium-driver`, as `.ci/run` does), never
from a browser download. Without them the test skips and says why; under CI (`CI=true`) it fails instead.
Screenshots are kept in tests/artifacts/ (git-ignored): the canvas half-way and at the end.
"""

import json
import os
import shutil
import tempfile
import time

import pytest

from helpers import NAME, TESTS, ServerThread, save_tiny_byte_model

ARTIFACTS = TESTS / "artifacts"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1100,1000",
)

# Records the canvas after every change, so the test can look at the steps after the fact.
RECORD_CANVAS = """
window.snapshots = [];
new MutationObserver(() => {
  const canvas = document.getElementById("canvas");
  window.snapshots.push({html: canvas.innerHTML, masked: canvas.querySelectorAll(".mask").length});
}).observe(document.getElementById("canvas"), {childList: true});
"""


def unavailable(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI installs it: .ci/run)")
    pytest.skip(reason)


def chromium_paths():
    browser = next((shutil.which(name) for name in ("chromium", "chromium-browser") if shutil.which(name)), None)
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        unavailable(
            "no Chromium here: install Debian's chromium and chromium-driver "
            "(apt-get install chromium chromium-driver)"
        )
    return browser, driver


@pytest.fixture
def browser(tmp_path):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        unavailable("selenium is not installed (dev extra)")
    binary, driver_path = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path)}")
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    yield driver
    driver.quit()


@pytest.fixture
def demo_server(tmp_path):
    import torch
    from transformers import AutoTokenizer

    from llada import LLaDAForMaskedDiffusion
    from llada.serving import create_app

    folder = save_tiny_byte_model(tmp_path / "model")
    model = LLaDAForMaskedDiffusion.from_pretrained(folder).eval()
    # printable ASCII only, so that the screenshot shows letters
    model.generation_config.suppress_tokens = [*range(32), *range(127, 256)]
    torch.manual_seed(0)
    with ServerThread(create_app(model, AutoTokenizer.from_pretrained(folder), NAME)) as server:
        yield server


def test_demo_page_denoises_a_prompt(browser, demo_server):
    import httpx
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    ARTIFACTS.mkdir(exist_ok=True)
    browser.get(demo_server.url + "/demo")
    wait = WebDriverWait(browser, 30)
    wait.until(lambda driver: driver.find_element(By.ID, "model").text == NAME)
    prompt = browser.find_element(By.ID, "prompt")
    prompt.clear()
    prompt.send_keys("To be, or not to be")
    settings = {"max_tokens": 48, "steps": 48, "block_length": 16, "temperature": 1.0, "seed": 7}
    for name, value in settings.items():
        field = browser.find_element(By.ID, name)
        field.clear()
        field.send_keys(str(value))
    browser.execute_script(RECORD_CANVAS)
    browser.find_element(By.ID, "go").click()
    wait.until(lambda driver: driver.find_element(By.ID, "final").get_attribute("data-done") == "true")

    final = browser.find_element(By.ID, "final").get_attribute("textContent")
    expected = httpx.post(
        demo_server.url + "/v1/completions",
        timeout=60,
        json={"model": NAME, "prompt": "To be, or not to be", **settings},
    ).json()["choices"][0]["text"]
    assert final == expected  # the page shows what the API gives for the same request
    assert browser.find_element(By.ID, "status").text.startswith("done in 48 steps")
    snapshots = browser.execute_script("return window.snapshots")
    masked = [snapshot["masked"] for snapshot in snapshots]
    assert max(masked) > 24 and masked[-1] == 0  # blanks first, every one filled in the end
    assert len(set(masked)) >= 3  # the page redrew as the canvas denoised (chunks read together draw once)
    colours = browser.execute_script(
        "return Array.from(document.querySelectorAll('#canvas .tok')).map((s) => s.style.background)"
    )
    assert len(colours) == 48 and len(set(colours)) > 10  # coloured by the step that committed each token
    browser.save_screenshot(str(ARTIFACTS / "serving_demo_final.png"))
    middle = next(snapshot["html"] for snapshot in snapshots if snapshot["masked"] <= 24)
    browser.execute_script("document.getElementById('canvas').innerHTML = arguments[0]", middle)
    browser.save_screenshot(str(ARTIFACTS / "serving_demo_halfway.png"))
    (ARTIFACTS / "serving_demo.json").write_text(
        json.dumps({"final_text": final, "settings": settings, "time": time.strftime("%Y-%m-%d %H:%M:%S")})
    )


def test_demo_page_has_no_external_assets(demo_server):
    import httpx

    page = httpx.get(demo_server.url + "/demo").text
    assert "<script src" not in page and "<link" not in page and "http://" not in page and "https://" not in page

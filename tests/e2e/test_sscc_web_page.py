"""The page with the separate-coding bundle (issue 24): the channel code's line (rate, decoded) beside the channel
line, the raster over the coded block, and the code's modulation picked from the model card. Headless Chromium, as
tests/e2e/test_web_page.py (skipped, saying what is missing, without a browser)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sjscc.tools.services import device_is_ready, edge_is_serving, free_port, start_service, wait_until

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "sscc-cnn-q4-ldpc"
WAIT_S = 60.0

selenium = pytest.importorskip("selenium", reason="the browser test needs the 'selenium' package")
if not (os.path.isfile(CHROMIUM) and os.path.isfile(CHROMEDRIVER)):
    if os.environ.get("SJSCC_REQUIRE_BROWSER") == "1":
        raise RuntimeError("SJSCC_REQUIRE_BROWSER=1 but Chromium or chromedriver is missing")
    pytest.skip("the browser test needs Debian's 'chromium' and 'chromium-driver'", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service as DriverService  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def url(tmp_path_factory) -> Iterator[str]:
    log_dir = tmp_path_factory.mktemp("sscc-web-logs")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SJSCC_")}
    env.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    edge_port, device_port = free_port(), free_port()
    edge = start_service("edge", ["edge", "--bundle", str(BUNDLE), "--host", "127.0.0.1", "--port", str(edge_port)],
                         log_dir, env)
    device = start_service("device", ["device", "--bundle", str(BUNDLE), "--edge", f"127.0.0.1:{edge_port}",
                                      "--host", "127.0.0.1", "--port", str(device_port), "--rpc-timeout", "30"],
                           log_dir, env)
    try:
        wait_until(lambda: edge_is_serving(f"127.0.0.1:{edge_port}"), edge, 120.0)
        address = f"http://127.0.0.1:{device_port}"
        wait_until(lambda: device_is_ready(address), device, 120.0)
        yield address
    finally:
        device.stop()
        edge.stop()


@pytest.fixture(scope="module")
def driver() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000"):
        options.add_argument(argument)
    browser = webdriver.Chrome(options=options, service=DriverService(executable_path=CHROMEDRIVER))
    try:
        yield browser
    finally:
        browser.quit()


def classify_on_page(driver: webdriver.Chrome, snr_db: str) -> str:
    driver.execute_script("const s = document.getElementById('snr-db'); s.value = arguments[0]; "
                          "s.dispatchEvent(new Event('input'));", snr_db)
    driver.execute_script("document.getElementById('bits-code').textContent = '';")
    driver.find_element(By.ID, "classify").click()
    WebDriverWait(driver, WAIT_S, poll_frequency=0.1).until(
        lambda d: d.find_element(By.ID, "bits-code").text not in ("", "–") or d.find_element(By.ID, "error").text)
    assert not driver.find_element(By.ID, "error").is_displayed(), driver.find_element(By.ID, "error").text
    return driver.find_element(By.ID, "bits-code").text


def test_the_page_shows_the_code_line_rate_and_whether_the_block_decoded(url, driver) -> None:
    driver.get(url + "/")
    WebDriverWait(driver, WAIT_S).until(lambda d: "LDPC" in d.find_element(By.ID, "model-summary").text)
    assert Select(driver.find_element(By.ID, "modulation")).first_selected_option.get_attribute("value") == "qpsk"
    driver.find_element(By.CSS_SELECTOR, "button.sample[data-name='coffee.jpg']").click()
    Select(driver.find_element(By.ID, "channel")).select_by_value("awgn")
    driver.execute_script("document.getElementById('seed').value = '4';")
    high = classify_on_page(driver, "12")
    assert high.startswith("LDPC + CRC16, rate 0.531: 256 bits in 512 coded bits, 256 symbols") and \
        high.endswith("· decoded (CRC ok)")
    assert driver.find_element(By.ID, "raster").get_attribute("data-bits") == "512"  # the coded block
    assert "of 512 bits wrong" in driver.find_element(By.ID, "bits-channel").text
    low = classify_on_page(driver, "-4")
    assert low.endswith("· not decoded (CRC failed: erase)")
    coffee = httpx.get(url + "/web/samples/coffee.jpg", timeout=10).content
    reply = httpx.post(url + "/v1/classify", params={"channel": "awgn", "snr_db": "-4", "seed": "4"},
                       files={"image": ("coffee.jpg", coffee, "image/jpeg")}, timeout=60).json()
    assert reply["channel"]["code"]["decoded"] is False

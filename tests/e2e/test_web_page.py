"""The device's web page in a real headless Chromium, against a real device and edge on loopback.

The browser uploads a photo, picks BSC with p = 0.2 (by keyboard) and a seed, classifies, and the page's label,
top-5, bit counts and marked (flipped/erased) bits must equal what ``POST /v1/classify?include=bits`` answers for
the same image and parameters (same seed, same channel draw). The sweep's point at p = 0.2 must be that same answer.
Then failures: a file that is not an image, a rejected parameter, and the edge stopped: the page shows the API's
``detail``. Screenshots (desktop and a 390-px-wide phone) go to ``$SJSCC_TEST_ARTIFACTS`` or a temporary folder
that the test prints.

Needs Debian's ``chromium`` and ``chromium-driver`` and the ``selenium`` package; skipped, saying which is missing,
without them. The driver path is passed explicitly, so Selenium Manager never tries to download a browser.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from sjscc.tools.services import Service, device_is_ready, edge_is_serving, free_port, start_service, wait_until

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
STARTUP_TIMEOUT_S = 120.0
WAIT_S = 60.0
SEED = "42"


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the browser test needs the 'selenium' package (pip install -e '.[dev]')"
    if not (os.path.isfile(CHROMIUM) and os.path.isfile(CHROMEDRIVER)):
        return (f"the browser test needs Chromium and chromedriver ({CHROMIUM}, {CHROMEDRIVER}); "
                f"install Debian's 'chromium' and 'chromium-driver'")
    return None


# CI sets SJSCC_REQUIRE_BROWSER=1 so that a missing browser fails the run instead of skipping the test.
if (missing := _missing()) is not None:
    if os.environ.get("SJSCC_REQUIRE_BROWSER") == "1":
        raise RuntimeError(f"SJSCC_REQUIRE_BROWSER=1 but {missing}")
    pytest.skip(missing, allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.chrome.service import Service as DriverService  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


@dataclass
class Running:
    edge: Service
    device: Service
    url: str


@pytest.fixture(scope="module")
def running(tiny_bundle, tmp_path_factory) -> Iterator[Running]:
    log_dir = tmp_path_factory.mktemp("web-service-logs")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SJSCC_")}
    env.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    edge_port, device_port = free_port(), free_port()
    edge_address = f"127.0.0.1:{edge_port}"
    edge = start_service("edge", ["edge", "--bundle", str(tiny_bundle.path), "--host", "127.0.0.1",
                                  "--port", str(edge_port), "--max-wait-ms", "2"], log_dir, env)
    device = start_service("device", ["device", "--bundle", str(tiny_bundle.path), "--edge", edge_address,
                                      "--host", "127.0.0.1", "--port", str(device_port), "--rpc-timeout", "10"],
                           log_dir, env)
    try:
        wait_until(lambda: edge_is_serving(edge_address), edge, STARTUP_TIMEOUT_S)
        url = f"http://127.0.0.1:{device_port}"
        wait_until(lambda: device_is_ready(url), device, STARTUP_TIMEOUT_S)
        yield Running(edge, device, url)
    finally:
        device.stop()
        edge.stop()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    folder = Path(os.environ["SJSCC_TEST_ARTIFACTS"]) if os.environ.get("SJSCC_TEST_ARTIFACTS") else \
        tmp_path_factory.mktemp("web-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nweb page screenshots in {folder}")
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000", "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=DriverService(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def photo_file(tmp_path_factory) -> Path:
    from skimage import data

    path = tmp_path_factory.mktemp("upload") / "chelsea.png"
    Image.fromarray(data.chelsea()).resize((150, 113)).save(path)
    return path


def wait(driver: webdriver.Chrome, condition, what: str):
    try:
        return WebDriverWait(driver, WAIT_S, poll_frequency=0.1).until(lambda d: condition(d))
    except TimeoutException:
        error = driver.find_element(By.ID, "error").text
        raise AssertionError(f"the page did not show {what} within {WAIT_S:.0f} s (error box: {error!r})") from None


def full_page_screenshot(driver: webdriver.Chrome, path: Path, width: int, mobile: bool = False) -> None:
    """The whole page at ``width`` CSS pixels (Chrome's device emulation, so the page lays out as on that screen)."""
    metrics = {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": mobile}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    time.sleep(0.5)  # the page redraws its canvases 0.1 s after a resize; only the picture depends on this
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**metrics, "height": int(height)})
    path.write_bytes(base64.b64decode(driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})["data"]))


def bits_of(encoded: str | None, count: int) -> np.ndarray:
    """Unpack base64 of a packed payload (row-major, MSB first) as the page's raster does."""
    if encoded is None:
        return np.zeros(count, dtype=np.uint8)
    return np.unpackbits(np.frombuffer(base64.b64decode(encoded), dtype=np.uint8))[:count]


def positions(values: str) -> list[int]:
    return [int(v) for v in values.split(",") if v]


def classify_button_ready(driver) -> bool:
    return driver.find_element(By.ID, "classify").is_enabled()


def submit_and_wait_for_error(driver) -> str:
    driver.execute_script("document.getElementById('error').hidden = true")
    driver.find_element(By.ID, "classify").click()
    wait(driver, lambda d: d.find_element(By.ID, "error").is_displayed() and classify_button_ready(d), "an error")
    return driver.find_element(By.ID, "error").text


def test_the_page_says_when_no_image_is_chosen(running, browser) -> None:
    browser.get(running.url + "/")
    text = submit_and_wait_for_error(browser)
    assert "Choose an image first" in text


def test_a_sample_or_a_dropped_file_is_what_gets_classified(running, browser) -> None:
    driver = browser
    driver.get(running.url + "/")
    Select(driver.find_element(By.ID, "channel")).select_by_value("none")
    sample = driver.find_element(By.CSS_SELECTOR, "button.sample[data-name='coffee.jpg']")
    sample.send_keys(Keys.ENTER)  # a button: the keyboard picks it
    wait(driver, lambda d: "coffee.jpg" in d.find_element(By.ID, "image-name").text, "the sample's name")
    assert sample.get_attribute("aria-pressed") == "true"
    driver.find_element(By.ID, "classify").click()
    wait(driver, lambda d: d.find_element(By.ID, "raster").get_attribute("data-bits") is not None, "the answer")
    coffee = httpx.get(running.url + "/web/samples/coffee.jpg", timeout=10).content
    reply = httpx.post(running.url + "/v1/classify", params={"channel": "none"},
                       files={"image": ("coffee.jpg", coffee, "image/jpeg")}, timeout=30).json()
    assert driver.find_element(By.ID, "result-label").text == reply["label"]
    assert driver.find_element(By.ID, "raster").get_attribute("data-flipped") == ""

    # A file dropped on the form replaces the choice (a synthetic drop: WebDriver cannot drag from the desktop).
    driver.execute_script("""
        const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], "dropped.jpg", {type: "image/jpeg"}));
        document.getElementById("controls").dispatchEvent(
            new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
    """, base64.b64encode(coffee).decode())
    wait(driver, lambda d: "dropped.jpg" in d.find_element(By.ID, "image-name").text, "the dropped file")
    assert sample.get_attribute("aria-pressed") == "false"


def test_the_page_shows_what_the_api_answers_then_the_failures(running, browser, photo_file, artifacts) -> None:
    driver = browser
    driver.get(running.url + "/")
    assert "sjscc" in driver.title
    model = httpx.get(running.url + "/v1/model", timeout=10).json()
    wait(driver, lambda d: model["model_id"] in d.find_element(By.ID, "model-summary").text, "the model id")

    # Every control is labelled.
    for control in ("image-input", "channel", "p", "seed"):
        assert driver.find_elements(By.CSS_SELECTOR, f"label[for='{control}']"), f"#{control} has no label"

    driver.find_element(By.ID, "image-input").send_keys(str(photo_file))
    Select(driver.find_element(By.ID, "channel")).select_by_value("bsc")
    slider = driver.find_element(By.ID, "p")
    assert slider.get_attribute("value") == "0.1"
    for _ in range(10):  # by keyboard: 0.1 + 10 steps of 0.01
        slider.send_keys(Keys.ARROW_RIGHT)
    assert slider.get_attribute("value") == "0.2"
    assert driver.find_element(By.ID, "p-value").text == "0.20"
    seed = driver.find_element(By.ID, "seed")
    seed.clear()
    seed.send_keys(SEED, Keys.ENTER)  # Enter submits the form: no mouse needed

    raster = driver.find_element(By.ID, "raster")
    wait(driver, lambda d: raster.get_attribute("data-bits") is not None, "the raster")

    # The same request over REST: the same image, channel, p and seed give the same bits.
    reply = httpx.post(running.url + "/v1/classify", params={"channel": "bsc", "p": "0.2", "seed": SEED,
                                                              "include": "bits"},
                       files={"image": (photo_file.name, photo_file.read_bytes(), "image/png")}, timeout=30)
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    bits = answer["bits"]
    count = bits["payload_bits"]
    sent, received = bits_of(bits["sent"], count), bits_of(bits["received"], count)
    flipped = np.flatnonzero(sent != received).tolist()
    assert len(flipped) == answer["channel"]["flipped_bits"] > 0
    assert bits["erased"] is None and answer["channel"]["erased_bits"] == 0

    assert driver.find_element(By.ID, "result-label").text == answer["label"]
    top = driver.find_elements(By.CSS_SELECTOR, "#result-top li")
    assert [item.text.split("\n")[0] for item in top] == [entry["label"] for entry in answer["top"]]
    assert driver.find_element(By.ID, "bits-payload").get_attribute("data-value") == str(count)
    assert driver.find_element(By.ID, "bits-payload").text.startswith(f"{count} bits")
    assert int(raster.get_attribute("data-bits")) == count
    assert int(raster.get_attribute("data-ones")) == int(sent.sum())
    assert positions(raster.get_attribute("data-flipped")) == flipped
    assert positions(raster.get_attribute("data-erased")) == []
    assert f"{len(flipped)} flipped" in driver.find_element(By.ID, "raster-summary").text
    assert f"{len(flipped)} flipped" in driver.find_element(By.ID, "bits-channel").text
    assert float(driver.find_element(By.ID, "latency").get_attribute("data-total")) > 0
    assert len(driver.find_elements(By.CSS_SELECTOR, "#latency span")) == 6

    # The sweep: 11 seeded requests; its p = 0.2 point is the request above.
    driver.find_element(By.ID, "run-sweep").click()
    sweep = driver.find_element(By.ID, "sweep")
    wait(driver, lambda d: sweep.get_attribute("data-points") is not None, "the sweep")
    points = {round(point["p"], 2): point for point in json.loads(sweep.get_attribute("data-points"))}
    assert sorted(points) == [round(0.05 * i, 2) for i in range(11)]
    assert points[0.2]["label"] == answer["label"] and points[0.2]["flipped"] == len(flipped)
    assert points[0.2]["prob"] == pytest.approx(answer["top"][0]["prob"], abs=1e-6)
    assert points[0.0]["flipped"] == 0

    full_page_screenshot(driver, artifacts / "web-desktop.png", 1280)
    full_page_screenshot(driver, artifacts / "web-phone-390.png", 390, mobile=True)
    overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"at 390 px the page is {overflow} px wider than the screen"
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

    # BEC marks erased bits, and what the page marks is what the API says.
    Select(driver.find_element(By.ID, "channel")).select_by_value("bec")
    driver.find_element(By.ID, "classify").click()
    wait(driver, lambda d: "BEC" in d.find_element(By.ID, "bits-channel").text and classify_button_ready(d), "BEC")
    bec = httpx.post(running.url + "/v1/classify", params={"channel": "bec", "p": "0.2", "seed": SEED,
                                                            "include": "bits"},
                     files={"image": (photo_file.name, photo_file.read_bytes(), "image/png")}, timeout=30).json()
    erased = np.flatnonzero(bits_of(bec["bits"]["erased"], count)).tolist()
    assert len(erased) == bec["channel"]["erased_bits"] > 0
    assert positions(raster.get_attribute("data-erased")) == erased
    wrong = np.flatnonzero(bits_of(bec["bits"]["sent"], count) != bits_of(bec["bits"]["received"], count)).tolist()
    assert positions(raster.get_attribute("data-flipped")) == wrong and set(wrong) <= set(erased)

    # Failures show the API's detail.
    seed.clear()
    seed.send_keys("-1")
    assert "HTTP 400" in (text := submit_and_wait_for_error(driver)) and "seed must be an integer" in text
    seed.clear()
    seed.send_keys(SEED)
    not_an_image = photo_file.parent / "notes.png"
    not_an_image.write_bytes(b"this is a text file, not a picture\n")
    driver.find_element(By.ID, "image-input").send_keys(str(not_an_image))
    assert "HTTP 415" in (text := submit_and_wait_for_error(driver)) and "not an image" in text
    assert driver.find_element(By.ID, "result-label").text == "–"

    driver.find_element(By.ID, "image-input").send_keys(str(photo_file))
    running.edge.process.send_signal(signal.SIGTERM)
    assert running.edge.process.wait(30) == 0, running.edge.log_tail()
    text = submit_and_wait_for_error(driver)
    assert "HTTP 503" in text and "unavailable" in text, text
    full_page_screenshot(driver, artifacts / "web-edge-down.png", 1280)


def test_the_page_and_its_files_are_served_without_outside_references(running) -> None:
    page = httpx.get(running.url + "/", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for element_id in ("image-input", "channel", "p", "seed", "classify", "result-label", "result-top",
                       "bits-payload", "latency", "raster", "sweep", "error"):
        assert f'id="{element_id}"' in page.text
    for path in ("/web/app.js", "/web/style.css", "/web/samples/cat.jpg", "/web/LICENSES.md"):
        reply = httpx.get(running.url + path, timeout=10)
        assert reply.status_code == 200, path
        assert b"http://" not in reply.content and b"https://" not in reply.content, path
    sample = httpx.get(running.url + "/web/samples/cat.jpg", timeout=10).content
    assert Image.open(io.BytesIO(sample)).size == (128, 128)

#!/usr/bin/env python3
"""A screenshot of the device's web page serving a real bundle (the README's picture is made with this).

    .venv/bin/python scripts/web_screenshot.py --bundle bundles/default --out docs/img/web-page.png

Starts ``sjscc edge`` and ``sjscc device`` on free loopback ports, opens the page in headless Chromium (Debian's
``chromium`` + ``chromium-driver``, via selenium), picks the bundled cat sample, sends it over BSC p = 0.2 with
seed 1, runs the robustness sweep, saves the whole page as a PNG, and stops both processes.
"""

from __future__ import annotations

import argparse
import base64
import os
import tempfile
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from sjscc.tools.services import device_is_ready, edge_is_serving, free_port, start_service, wait_until


def screenshot(url: str, out: Path, width: int, chromium: str, chromedriver: str) -> None:
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     f"--window-size={width},1000", "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=DriverService(executable_path=chromedriver))
    try:
        driver.get(url)
        driver.find_element(By.CSS_SELECTOR, "button.sample[data-name='cat.jpg']").click()
        WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "preview").is_displayed())
        Select(driver.find_element(By.ID, "channel")).select_by_value("bsc")
        driver.execute_script("const p = document.getElementById('p'); p.value = '0.2';"
                              "p.dispatchEvent(new Event('input'));")
        seed = driver.find_element(By.ID, "seed")
        seed.clear()
        seed.send_keys("1")
        driver.find_element(By.ID, "classify").click()
        WebDriverWait(driver, 60).until(lambda d: d.find_element(By.ID, "raster").get_attribute("data-bits"))
        driver.find_element(By.ID, "run-sweep").click()
        WebDriverWait(driver, 120).until(lambda d: d.find_element(By.ID, "sweep").get_attribute("data-points"))
        error = driver.find_element(By.ID, "error")
        if error.is_displayed():
            raise RuntimeError(f"the page shows an error: {error.text}")
        metrics = {"width": width, "height": 1000, "deviceScaleFactor": 1, "mobile": width < 600}
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
        time.sleep(0.5)  # the canvases redraw 0.1 s after a resize
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**metrics, "height": int(height)})
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(shot["data"]))
    finally:
        driver.quit()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", default="bundles/default", help="model bundle the device and edge serve")
    parser.add_argument("--out", type=Path, default=Path("docs/img/web-page.png"), help="PNG to write")
    parser.add_argument("--width", type=int, default=1100, help="page width in CSS pixels")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    args = parser.parse_args()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SJSCC_")}, "PYTHONUNBUFFERED": "1"}
    edge_port, device_port = free_port(), free_port()
    edge_address, url = f"127.0.0.1:{edge_port}", f"http://127.0.0.1:{device_port}"
    with tempfile.TemporaryDirectory(prefix="sjscc-web-shot-") as log_dir:
        edge = start_service("edge", ["edge", "--bundle", args.bundle, "--host", "127.0.0.1",
                                      "--port", str(edge_port)], Path(log_dir), env)
        device = start_service("device", ["device", "--bundle", args.bundle, "--edge", edge_address,
                                          "--host", "127.0.0.1", "--port", str(device_port)], Path(log_dir), env)
        try:
            wait_until(lambda: edge_is_serving(edge_address), edge)
            wait_until(lambda: device_is_ready(url), device)
            screenshot(url + "/", args.out, args.width, args.chromium, args.chromedriver)
        finally:
            device.stop()
            edge.stop()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

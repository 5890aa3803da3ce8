"""Debian's headless Chromium driven through Selenium and Debian's chromedriver (no browser download)."""

from __future__ import annotations

import io
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def available() -> str | None:
    """Why the browser cannot run here (None when it can)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (requirements.txt)"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            return f"{path} is missing (apt-get install chromium chromium-driver; scripts/bootstrap.sh does)"
    return None


@contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[Any]:
    """A headless Chromium with a fresh profile, no network services of its own."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="aircast-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
                "--disable-dev-shm-usage", f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(driver: Any, condition: Callable[[Any], bool], timeout_s: float, what: str) -> None:
    """Poll ``condition(driver)`` (the page may reload itself) until true; fail with the page's text."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if condition(driver):
                return
        except Exception:  # noqa: BLE001 - the page was reloading under us
            pass
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}; page text:\n"
                         + driver.find_element("tag name", "body").text[:3000])


def screenshot(driver: Any, path: Path, max_height: int = 1700) -> Path:
    """The whole page (up to ``max_height`` px) as a small palette PNG."""
    from PIL import Image

    height = min(max_height, int(driver.execute_script("return document.documentElement.scrollHeight")))
    width = int(driver.execute_script("return document.documentElement.scrollWidth"))
    driver.set_window_size(max(1280, width), height + 120)
    time.sleep(0.2)
    png = driver.get_screenshot_as_png()
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image = image.crop((0, 0, image.width, min(image.height, height)))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    driver.set_window_size(1280, 900)
    return path

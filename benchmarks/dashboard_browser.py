"""Open the published asv dashboard in headless Chromium: what renders, what it requested, a screenshot.

Used by the browser test (tests/test_asv_dashboard.py) and for the README's screenshot::

    python -m benchmarks.publish_offline
    python -m benchmarks.dashboard_browser --screenshot docs/asv-dashboard.png

The dashboard is served on 127.0.0.1 by ``http.server`` in a thread (asv's pages fetch their JSON, so ``file://``
does not work) and driven with Selenium through Debian's ``chromium`` and ``chromium-driver`` packages
(``apt-get install chromium chromium-driver``; ``pip install selenium``). Selenium is imported only when a browser
is opened, because asv imports every module of this directory when it discovers benchmarks.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import json
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .publish_offline import configured_html_dir

GRAPH = "bench_sparse.SparseCrossEntropy.time_forward"
WINDOW = (1400, 900)
# No network on its own: no background or component-update requests, no QUIC, no sync, no first-run pages.
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
    # Every host name but 127.0.0.1 fails to resolve: the page sees a machine without internet, whatever this one
    # has, and a CDN request is still recorded (as a failed request) instead of being made.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        pass


@contextlib.contextmanager
def serve(html_dir: Path) -> Iterator[str]:
    """Serve ``html_dir`` on 127.0.0.1 at a free port in a background thread; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(html_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def find_chromium() -> tuple[str, str] | None:
    """Paths of the Chromium binary and of chromedriver, or None if either is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A Selenium driver for headless Chromium with a fresh profile, recording every request the pages make."""
    from selenium import webdriver  # type: ignore[import-not-found]
    from selenium.webdriver.chrome.service import Service  # type: ignore[import-not-found]

    paths = find_chromium()
    if paths is None:
        raise RuntimeError("chromium and chromedriver are needed: apt-get install chromium chromium-driver")
    with tempfile.TemporaryDirectory(prefix="asv-dashboard-profile-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = paths[0]
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
        # An explicit chromedriver path: Selenium then does not try to download one.
        driver = webdriver.Chrome(options=options, service=Service(executable_path=paths[1]))
        try:
            # The page's viewport, not the window (headless windows have no frame but may differ in size).
            driver.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {"width": WINDOW[0], "height": WINDOW[1], "deviceScaleFactor": 1, "mobile": False},
            )
            yield driver
        finally:
            driver.quit()


def requested_urls(driver: Any) -> list[str]:
    """URLs the pages requested since the last call (Chromium's performance log, Network.requestWillBeSent)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def off_host(urls: list[str], base_url: str) -> list[str]:
    """The network URLs (http, https, ws, wss, ftp) that are not on the dashboard's own host and port.

    ``data:`` and ``blob:`` stay in the page; ``chrome://`` is the browser's own start page, not the network.
    """
    host = urlsplit(base_url).netloc
    network = ("http", "https", "ws", "wss", "ftp")
    return [url for url in urls if urlsplit(url).scheme in network and urlsplit(url).netloc != host]


_GRID_STATE = """
const containers = document.querySelectorAll('#summarygrid-display .benchmark-container');
const plots = document.querySelectorAll('#summarygrid-display .benchmark-plot canvas.flot-base');
return {containers: containers.length, plots: plots.length,
        names: Array.from(containers).map(c => c.getAttribute('href'))};
"""

# flot draws the series on the '.flot-base' canvas; axes, grid and labels are grey or black, the series are
# coloured, so pixels with a clear hue (max - min channel > 60) are the lines and their points.
_GRAPH_STATE = """
const div = window.jQuery && jQuery('#main-graph');
const plot = div && div.data('plot');
if (!plot) { return null; }
const canvas = div.find('canvas.flot-base')[0];
const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
let coloured = 0;
for (let i = 0; i < pixels.length; i += 4) {
    const r = pixels[i], g = pixels[i + 1], b = pixels[i + 2], a = pixels[i + 3];
    if (a > 0 && Math.max(r, g, b) - Math.min(r, g, b) > 60) { coloured += 1; }
}
return {series: plot.getData().map(s => ({label: s.label, points: s.data.filter(p => p[1] !== null).length})),
        canvas: [canvas.width, canvas.height], coloured_pixels: coloured};
"""


def wait_for(driver: Any, script: str, ready: Any, timeout: float = 60.0) -> Any:
    """Run ``script`` until ``ready(result)`` holds; returns that result (TimeoutException otherwise)."""
    from selenium.webdriver.support.ui import WebDriverWait  # type: ignore[import-not-found]

    state: dict[str, Any] = {}

    def done(driver: Any) -> bool:
        state["result"] = driver.execute_script(script)
        return bool(ready(state["result"]))

    WebDriverWait(driver, timeout, poll_frequency=0.25).until(done)
    return state["result"]


def inspect_dashboard(driver: Any, base_url: str, screenshot: Path | None = None) -> dict[str, Any]:
    """Load the grid, then the ``time_forward`` graph; returns what rendered and every off-host request."""
    driver.get(base_url)
    grid = wait_for(driver, _GRID_STATE, lambda state: state["containers"] > 0 and state["plots"] > 0)
    grid_url = driver.current_url
    driver.get(f"{base_url}#{GRAPH}")
    driver.refresh()  # a change of fragment alone may not reload; asv reads the fragment at start
    graph = wait_for(driver, _GRAPH_STATE, lambda state: state is not None and state["series"])
    if screenshot is not None:
        driver.execute_script("document.activeElement && document.activeElement.blur()")
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(screenshot))
    return {
        "grid": grid,
        "grid_url": grid_url,
        "graph": graph,
        "graph_url": driver.current_url,
        "off_host_requests": off_host(requested_urls(driver), base_url),
        "console_errors": [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dashboard_browser", description=__doc__.split("\n")[0])
    parser.add_argument("--html-dir", type=Path, help="published dashboard (default: html_dir of asv.conf.json)")
    parser.add_argument("--screenshot", type=Path, help=f"save the {GRAPH} graph page as PNG here")
    args = parser.parse_args(argv)
    html_dir = (args.html_dir or configured_html_dir()).resolve()
    with serve(html_dir) as base_url, chromium() as driver:
        report = inspect_dashboard(driver, base_url, args.screenshot)
    print(
        json.dumps(
            {k: v for k, v in report.items() if k != "grid"} | {"grid_benchmarks": report["grid"]["containers"]},
            indent=2,
        )
    )
    return 1 if report["off_host_requests"] or not report["graph"]["coloured_pixels"] else 0


if __name__ == "__main__":
    sys.exit(main())

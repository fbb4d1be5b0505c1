"""The offline asv dashboard: the external-URL check, the vendoring step, and (slow) the page in a real browser."""

import base64
import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from benchmarks import publish_offline
from benchmarks.publish_offline import find_external_references, sri_hash, vendor_html

REPO_ROOT = Path(__file__).resolve().parent.parent


def _found(tmp_path: Path, name: str, text: str) -> list[str]:
    (tmp_path / name).write_text(text, encoding="utf-8")
    return [reference.url for reference in find_external_references(tmp_path)]


def test_html_resources_with_a_host_are_reported(tmp_path):
    page = """<!doctype html><html xmlns="http://www.w3.org/1999/xhtml"><head>
    <!-- <script src="https://in.a.comment.example/x.js"></script> -->
    <script src="https://cdn.example/lib.js"></script>
    <script src="//protocol-relative.example/lib.js"></script>
    <script src="vendor/lib.js"></script>
    <link rel="stylesheet" href="http://cdn.example/style.css">
    <link rel="shortcut icon" href="swallow.ico">
    <meta http-equiv="Content-Type" content="text/html; charset=utf-8">
    <style>body { background: url("https://img.example/bg.png") } /* url(http://comment.example/x.png) */</style>
    </head><body>
    <a href="https://github.com/airspeed-velocity/asv/">asv</a>
    <img src="swallow.png" srcset="a.png 1x, https://img.example/b.png 2x">
    <div style="background-image: url(https://img.example/inline.png)"></div>
    <script>var api = "https://api.example/data.json"; // "https://comment.example/"
    </script>
    </body></html>"""
    assert _found(tmp_path, "index.html", page) == [
        "https://cdn.example/lib.js",
        "//protocol-relative.example/lib.js",
        "http://cdn.example/style.css",
        "https://img.example/bg.png",
        "https://img.example/b.png",
        "https://img.example/inline.png",
        "https://api.example/data.json",
    ]


def test_css_and_js_files(tmp_path):
    css = """/*! Library v1 (http://library.example) */
    @font-face { src: url('../fonts/icons.eot?#iefix') format('embedded-opentype'), url(data:font/woff;base64,AA==); }
    @import "https://fonts.example/font.css";
    .x { background: url( "https://img.example/x.png" ); }"""
    js = r"""/* Licensed (https://licence.example/) */
    var pattern = /https?:\/\/[^"]+/g, half = 1 / 2, svg = "http://www.w3.org/2000/svg";
    var template = `https://template.example/${half}`;
    // $.getScript("https://commented.example/x.js")
    $.getScript('https://cdn.example/plugin.js');"""
    assert _found(tmp_path, "style.css", css) == ["https://fonts.example/font.css", "https://img.example/x.png"]
    (tmp_path / "style.css").unlink()
    assert _found(tmp_path, "app.js", js) == ["https://template.example/${half}", "https://cdn.example/plugin.js"]


def test_sri_hash_against_the_spec_value_of_the_empty_file():
    # The well-known SHA-256 of no bytes, base64: the form integrity attributes use.
    assert sri_hash(b"", "sha256") == "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
    assert sri_hash(b"abc", "sha512") == "sha512-" + base64.b64encode(hashlib.sha512(b"abc").digest()).decode()


def _fake_npm_tarball(cache: Path, package: str, version: str, files: dict[str, bytes]) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    with tarfile.open(cache / f"{package}-{version}.tgz", "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def test_vendoring_keeps_matching_hashes_and_recomputes_the_others(tmp_path):
    cache, html_dir = tmp_path / "cache", tmp_path / "html"
    html_dir.mkdir()
    jquery, flot = b"/* jquery */", b"/* flot, unminified */"
    css = b".icon { src: url('../fonts/icons.woff') format('woff'); }"
    _fake_npm_tarball(cache, "jquery", "3.3.1", {"dist/jquery.min.js": jquery})
    _fake_npm_tarball(cache, "flot", "0.8.3", {"jquery.flot.js": flot})
    _fake_npm_tarball(
        cache, "bootstrap", "3.1.1", {"dist/css/bootstrap.min.css": css, "dist/fonts/icons.woff": b"woff"}
    )
    pinned_jquery = sri_hash(jquery, "sha256")
    pinned_flot = sri_hash(b"/* what the CDN minified */", "sha512")
    page = f"""<head>
    <script src="https://cdn.example/jquery-3.3.1.min.js" integrity="{pinned_jquery}" crossorigin="anonymous"></script>
    <script src="https://cdn.example/ajax/libs/flot/0.8.3/jquery.flot.min.js" integrity="{pinned_flot}"></script>
    <link rel="stylesheet" href="https://cdn.example/npm/bootstrap@3.1.1/dist/css/bootstrap.min.css">
    <a href="https://project.example/">project</a>
    </head>"""
    (html_dir / "index.html").write_text(page, encoding="utf-8")

    entries = vendor_html(html_dir, cache)

    assert [(e.library.package, e.matched) for e in entries] == [
        ("jquery", True),
        ("flot", False),
        ("bootstrap", False),
    ]
    rewritten = (html_dir / "index.html").read_text(encoding="utf-8")
    assert f'src="vendor/jquery-3.3.1/dist/jquery.min.js" integrity="{pinned_jquery}"' in rewritten
    assert f'src="vendor/flot-0.8.3/jquery.flot.js" integrity="{sri_hash(flot, "sha512")}"' in rewritten
    assert pinned_flot not in rewritten
    assert "integrity recomputed for this file" in rewritten  # said in the page, next to the tag
    assert 'href="vendor/bootstrap-3.1.1/dist/css/bootstrap.min.css"' in rewritten
    assert (html_dir / "vendor/jquery-3.3.1/dist/jquery.min.js").read_bytes() == jquery
    assert (html_dir / "vendor/bootstrap-3.1.1/dist/fonts/icons.woff").read_bytes() == b"woff"
    manifest = (html_dir / "vendor/README.txt").read_text(encoding="utf-8")
    assert "integrity: asv:" in manifest and "integrity: recomputed:" in manifest
    assert find_external_references(html_dir) == []  # the <a href> link stays and is not a load


def test_an_unknown_cdn_file_or_a_missing_npm_is_a_clear_error(tmp_path, monkeypatch):
    html_dir = tmp_path / "html"
    html_dir.mkdir()
    (html_dir / "index.html").write_text('<script src="https://cdn.example/unknown-1.0.js"></script>')
    with pytest.raises(publish_offline.PublishError, match="unknown-1.0.js.*does not know how to vendor"):
        vendor_html(html_dir, tmp_path / "cache")
    (html_dir / "index.html").write_text('<script src="https://cdn.example/jquery-3.3.1.min.js"></script>')
    monkeypatch.setattr(publish_offline.shutil, "which", lambda name: None)
    with pytest.raises(publish_offline.PublishError, match="npm is not on PATH.*jquery@3.3.1"):
        vendor_html(html_dir, tmp_path / "empty-cache")


@pytest.mark.slow
def test_offline_dashboard_renders_in_headless_chromium(tmp_path):
    """Publish with the real command (asv + npm), then load the grid and the time_forward graph in Chromium."""
    pytest.importorskip("selenium")
    pytest.importorskip("asv")
    from benchmarks import dashboard_browser

    if dashboard_browser.find_chromium() is None:
        pytest.skip("needs Debian's chromium and chromium-driver")
    html_dir = tmp_path / "html"
    assert publish_offline.main(["--html-dir", str(html_dir)]) == 0

    with dashboard_browser.serve(html_dir) as base_url, dashboard_browser.chromium() as driver:
        report = dashboard_browser.inspect_dashboard(driver, base_url)

        # Controls: the same browser setup does see CDN requests, and a vendored file whose bytes no longer match
        # its integrity hash is refused (so the hashes are still checked).
        stock_dir = tmp_path / "stock"
        subprocess.run(
            [sys.executable, "-m", "asv", "publish", "--no-pull", "--html-dir", str(stock_dir)],
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
        )
        with dashboard_browser.serve(stock_dir) as stock_url:
            driver.get(stock_url)
            dashboard_browser.wait_for(driver, "return location.pathname", lambda path: path.endswith("error.html"))
            stock_requests = dashboard_browser.off_host(dashboard_browser.requested_urls(driver), stock_url)
        tampered_dir = tmp_path / "tampered"
        shutil.copytree(html_dir, tampered_dir)
        with open(tampered_dir / "vendor/jquery-3.3.1/dist/jquery.min.js", "a") as jquery:
            jquery.write("\n")
        with dashboard_browser.serve(tampered_dir) as tampered_url:
            driver.get(tampered_url)
            dashboard_browser.wait_for(driver, "return location.pathname", lambda path: path.endswith("error.html"))

    assert report["grid"]["containers"] >= 10
    assert "#" + dashboard_browser.GRAPH in report["grid"]["names"]
    assert report["grid"]["plots"] > 0
    assert not report["graph_url"].endswith("error.html")
    series = report["graph"]["series"]
    # one line per shape (and per machine, once results of two CPUs are filed: "machine-...; shape-...")
    assert len(series) >= 2 and all("shape-" in line["label"] for line in series)
    assert all(line["points"] >= 2 for line in series)  # each over at least two commits
    assert report["graph"]["coloured_pixels"] > 1000  # the lines are drawn, not only axes and labels
    assert report["off_host_requests"] == []
    # With two machines asv also asks for graphs of machine/os combinations that have no results (a 404 from our own
    # server); any other console error (a refused script, a failed integrity check) fails the test.
    absent_combinations = [e for e in report["console_errors"] if "/graphs/" in e and "status of 404" in e]
    assert [e for e in report["console_errors"] if e not in absent_combinations] == []
    assert any("jquery-3.3.1" in url for url in stock_requests)

"""Publish the asv dashboard so that it works without internet access.

``asv publish`` writes ``.asv/html/index.html`` with ten ``<script>``/``<link>`` tags that load jQuery, flot (and
its time, selection, categories and orderBars plugins), stupidtable, blueimp-md5 and Bootstrap from CDNs; without
them the dashboard shows only asv's "external (JavaScript) dependencies ... failed to load" page. This command runs
``asv publish``, takes the same libraries from npm packages (``npm pack NAME@VERSION``, cached outside the
repository), copies them under ``<html>/vendor/`` and points the HTML at them::

    python -m benchmarks.publish_offline            # asv publish, vendor the libraries, check no external URL
    python -m benchmarks.publish_offline --check    # only check an already published directory
    python -m benchmarks.publish_offline --no-publish  # vendor a directory that `asv publish` already wrote

asv's integrity (SRI) hashes are kept where the npm file is byte-identical to what they pin, and recomputed for
the local file where it is not (flot: npm has no minified 0.8.3 files; stupidtable: npm has 1.1.3, not 1.0.1).
Each such tag gets an HTML comment saying so, and ``vendor/README.txt`` lists every file, its package and whether
it matched. The check (also run after publishing) fails if any published HTML, CSS or JS file would load a
resource from another host; see :func:`find_external_references` for exactly what counts.

asv imports every module of this directory when it discovers benchmarks: this one defines no benchmark names and
does nothing on import.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import hashlib
import html
import html.parser
import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "numba_xent-asv-vendor"
VENDOR_DIR = "vendor"
MARK = "numba_xent publish_offline"


@dataclasses.dataclass(frozen=True)
class Library:
    """Where one file that asv's index.html loads from a CDN is found in an npm package."""

    url_path_suffix: str  # end of the path of asv's URL (host names left out on purpose)
    package: str  # npm package name
    version: str
    file: str  # path inside the package (without the tarball's top directory)
    note: str = ""  # why this package or file differs from what the CDN serves, if it does


# asv 0.6's index.html, in its order. flot 0.8.3 and stupidtable 1.0.1 are not on npm as asv loads them:
# flot's npm packages (flot, flot-charts, jquery.flot at 0.8.3: identical files) ship only the unminified
# sources, and stupidtable is on npm only as stupid-table-plugin 1.1.3, API-compatible for what asv calls
# (.stupidtable(sort_fns), .stupidsort(dir), the aftertablesort event).
LIBRARIES = (
    Library("/jquery-3.3.1.min.js", "jquery", "3.3.1", "dist/jquery.min.js"),
    Library(
        "/flot/0.8.3/jquery.flot.min.js", "flot", "0.8.3", "jquery.flot.js", "unminified source of the same release"
    ),
    Library(
        "/flot/0.8.3/jquery.flot.time.min.js",
        "flot",
        "0.8.3",
        "jquery.flot.time.js",
        "unminified source of the same release",
    ),
    Library(
        "/flot/0.8.3/jquery.flot.selection.min.js",
        "flot",
        "0.8.3",
        "jquery.flot.selection.js",
        "unminified source of the same release",
    ),
    Library(
        "/flot/0.8.3/jquery.flot.categories.min.js",
        "flot",
        "0.8.3",
        "jquery.flot.categories.js",
        "unminified source of the same release",
    ),
    Library(
        "/flot-orderbars@1.0.0/js/jquery.flot.orderBars.js", "flot-orderbars", "1.0.0", "js/jquery.flot.orderBars.js"
    ),
    Library(
        "/stupidtable/1.0.1/stupidtable.min.js",
        "stupid-table-plugin",
        "1.1.3",
        "stupidtable.min.js",
        "1.0.1 is not on npm; 1.1.3 keeps the API asv uses",
    ),
    Library("/blueimp-md5/2.19.0/js/md5.min.js", "blueimp-md5", "2.19.0", "js/md5.min.js"),
    Library("/bootstrap@3.1.1/dist/js/bootstrap.min.js", "bootstrap", "3.1.1", "dist/js/bootstrap.min.js"),
    Library("/bootstrap@3.1.1/dist/css/bootstrap.min.css", "bootstrap", "3.1.1", "dist/css/bootstrap.min.css"),
)


class PublishError(RuntimeError):
    """A step of the offline publish failed; the message says which and what to do."""


# ----------------------------------------------------------------------------------------------------------------
# Finding external references (the check)


@dataclasses.dataclass(frozen=True)
class ExternalReference:
    path: str  # file, relative to the published directory
    line: int
    where: str  # e.g. '<script src>', 'url()', 'JS string'
    url: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.where} {self.url}"


_EXTERNAL = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)
_LOCAL_SCHEMES = ("data:", "blob:", "about:", "javascript:", "mailto:")


def is_external_url(url: str) -> bool:
    """True for a URL that names a host: ``http://...``, ``https://...``, ``ftp://...``, protocol-relative ``//...``.

    Relative paths, fragments and ``data:``/``blob:``/``about:`` URLs stay in the page. ``file://`` has no host to
    reach but is not the published directory either, so it counts as external too.
    """
    return bool(_EXTERNAL.match(url)) and not url.strip().lower().startswith(_LOCAL_SCHEMES)


# Attributes whose URL the browser fetches without a click. Not listed, on purpose: <a href> and <area href> (a link
# the reader may follow, nothing is loaded to render the page: asv's own "airspeed velocity" link and the project
# link stay), xmlns/xmlns:* (namespace names, never fetched), <form action> (fetched only on submit).
_ANY_TAG = {"*"}
_LOADING_ATTRIBUTES: dict[str, set[str]] = {
    "src": _ANY_TAG,  # script, img, iframe, embed, source, track, audio, video, input type=image, frame
    "href": {"link", "base", "image", "use"},  # stylesheets, icons, preloads; <base> redirects every relative URL
    "xlink:href": {"image", "use"},
    "srcset": _ANY_TAG,
    "imagesrcset": _ANY_TAG,
    "poster": _ANY_TAG,
    "data": {"object"},
    "background": _ANY_TAG,
    "manifest": {"html"},
}
_CSS_URL = re.compile(r"""url\(\s*(['"]?)(.*?)\1\s*\)|@import\s+(['"])(.*?)\3""", re.IGNORECASE | re.DOTALL)
_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
_META_REFRESH_URL = re.compile(r"url\s*=\s*['\"]?([^'\";]+)", re.IGNORECASE)


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _css_references(css: str, path: str, first_line: int = 1, where: str = "CSS url()") -> list[ExternalReference]:
    """External targets of ``url(...)`` and ``@import`` in CSS, comments removed (blanked, so lines still count)."""
    css = _CSS_COMMENT.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), css)
    found = []
    for match in _CSS_URL.finditer(css):
        url = match.group(2) if match.group(2) is not None else match.group(4)
        if is_external_url(url):
            found.append(ExternalReference(path, first_line + _line_of(css, match.start()) - 1, where, url.strip()))
    return found


_JS_KEYWORDS_BEFORE_REGEX = {
    "return",
    "typeof",
    "case",
    "do",
    "else",
    "in",
    "of",
    "new",
    "delete",
    "void",
    "throw",
    "instanceof",
    "yield",
    "await",
}
_JS_BEFORE_REGEX = {"", *"(,=:[!&|?{};+-*%<>~^"}  # characters after which a '/' starts a regex literal
_JS_URL_IN_STRING = re.compile(r"(?:[a-z][a-z0-9+.-]*:)?//[A-Za-z0-9[]", re.IGNORECASE)
_XML_NAMESPACE = re.compile(r"^https?://www\.w3\.org/(?:1999/xhtml|2000/svg|1999/xlink|XML/1998/namespace|2000/xmlns/)")


def _js_string_literals(js: str) -> list[tuple[int, str]]:
    """(offset, body) of every string and template literal of ``js``, skipping comments and regex literals.

    A small lexer: a ``/`` starts a regex where an expression may start (after an operator, an opening bracket,
    a comma or semicolon, a keyword such as ``return``, or at the start), else it is a division.
    """
    literals = []
    i, n = 0, len(js)
    previous = ""  # last significant character, or the last word when it was an identifier or keyword
    while i < n:
        char = js[i]
        if char in " \t\r\n":
            i += 1
        elif js.startswith("//", i):
            i = js.find("\n", i)
            i = n if i < 0 else i
        elif js.startswith("/*", i):
            end = js.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif char in "'\"`":
            start, i = i, i + 1
            while i < n and js[i] != char:
                i += 2 if js[i] == "\\" else 1
            literals.append((start, js[start + 1 : i]))
            i += 1
            previous = "a"  # a literal ends an expression
        elif char == "/" and (
            previous == "" or previous in "(,=:[!&|?{};+-*%<>~^" or previous in _JS_KEYWORDS_BEFORE_REGEX
        ):
            i += 1
            in_class = False
            while i < n and (js[i] != "/" or in_class) and js[i] != "\n":
                if js[i] == "\\":
                    i += 1
                elif js[i] == "[":
                    in_class = True
                elif js[i] == "]":
                    in_class = False
                i += 1
            i += 1
            while i < n and (js[i].isalnum() or js[i] in "_$"):  # flags
                i += 1
            previous = "a"
        elif char.isalnum() or char in "_$":
            start = i
            while i < n and (js[i].isalnum() or js[i] in "_$"):
                i += 1
            previous = js[start:i]
        else:
            previous = char
            i += 1
    return literals


def _js_references(js: str, path: str, first_line: int = 1) -> list[ExternalReference]:
    """URLs with a host inside JS string literals (where code keeps URLs it loads); comments do not count.

    XML namespace names (``http://www.w3.org/2000/svg`` and the like, passed to ``createElementNS``) are
    identifiers, never fetched, and are left out.
    """
    found = []
    for offset, body in _js_string_literals(js):
        for match in _JS_URL_IN_STRING.finditer(body):
            url = re.split(r"""[\s'"`<>)]""", body[match.start() :], maxsplit=1)[0]
            if is_external_url(url) and not _XML_NAMESPACE.match(url):
                line = first_line + _line_of(js, offset + 1 + match.start()) - 1
                found.append(ExternalReference(path, line, "JS string", url))
    return found


class _HtmlScanner(html.parser.HTMLParser):
    """Collects external URLs from loading attributes, inline ``style``, ``<style>`` and inline ``<script>``."""

    def __init__(self, path: str) -> None:
        super().__init__(convert_charrefs=True)
        self.path = path
        self.found: list[ExternalReference] = []
        self._raw_tag: str | None = None  # "style" or "script" while inside one
        self._raw_start_line = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        line = self.getpos()[0]
        for name, value in attrs:
            if value is None:
                continue
            loaded_on = _LOADING_ATTRIBUTES.get(name, set())
            if loaded_on == _ANY_TAG or tag in loaded_on:
                urls = [part.split()[0] for part in value.split(",") if part.strip()] if "srcset" in name else [value]
                self.found += [
                    ExternalReference(self.path, line, f"<{tag} {name}>", u) for u in urls if is_external_url(u)
                ]
            elif name == "style":
                self.found += _css_references(value, self.path, line, f"<{tag} style> url()")
            elif name == "content" and tag == "meta" and (dict(attrs).get("http-equiv") or "").lower() == "refresh":
                match = _META_REFRESH_URL.search(value)
                if match and is_external_url(match.group(1)):
                    self.found.append(ExternalReference(self.path, line, "<meta refresh>", match.group(1)))
        if tag in ("style", "script"):
            self._raw_tag, self._raw_start_line = tag, line

    def handle_endtag(self, tag: str) -> None:
        if tag == self._raw_tag:
            self._raw_tag = None

    def handle_data(self, data: str) -> None:
        if self._raw_tag == "style":
            self.found += _css_references(data, self.path, self._raw_start_line, "<style> url()")
        elif self._raw_tag == "script":
            self.found += _js_references(data, self.path, self._raw_start_line)


def find_external_references(html_dir: Path) -> list[ExternalReference]:
    """Every place in the HTML, CSS and JS files under ``html_dir`` that would load something from another host.

    Counted: in HTML, URLs with a host in attributes the browser fetches to render the page (``src``, ``srcset``,
    ``poster``, ``<link href>``, ``<object data>``, ``<base href>``, ...), in ``style`` attributes, ``<style>`` and
    inline ``<script>``, and a ``<meta http-equiv=refresh>`` target; in CSS, ``url(...)`` and ``@import``; in JS,
    URLs with a host inside string literals. Not counted, because nothing is loaded from them: comments (licence
    headers name their project's site), ``<a href>`` links (followed only if clicked), XML namespace names
    (``xmlns`` attributes, ``http://www.w3.org/2000/svg`` strings). JSON, XML (asv's Atom feed) and images are not
    scanned: the dashboard's JSON holds the project URL, which asv shows as a link. A URL built at run time from
    pieces is out of reach of a static check; the browser test (tests/test_asv_dashboard.py) watches the requests.
    """
    found: list[ExternalReference] = []
    for file in sorted(html_dir.rglob("*")):
        suffix = file.suffix.lower()
        if not file.is_file() or suffix not in (".html", ".htm", ".css", ".js", ".mjs"):
            continue
        text = file.read_text(encoding="utf-8", errors="replace")
        relative = file.relative_to(html_dir).as_posix()
        if suffix in (".html", ".htm"):
            scanner = _HtmlScanner(relative)
            scanner.feed(text)
            scanner.close()
            found += scanner.found
        elif suffix == ".css":
            found += _css_references(text, relative)
        else:
            found += _js_references(text, relative)
    return found


# ----------------------------------------------------------------------------------------------------------------
# Fetching, copying and rewriting


def sri_hash(data: bytes, algorithm: str) -> str:
    """Subresource-integrity value of ``data``: ``sha256-<base64>`` and the like."""
    return f"{algorithm}-{base64.b64encode(hashlib.new(algorithm, data).digest()).decode()}"


def npm_tarball(package: str, version: str, cache_dir: Path) -> Path:
    """The npm tarball of ``package@version`` in ``cache_dir``, fetched with ``npm pack`` if it is not there yet.

    npm verifies the tarball against the registry's integrity record while it downloads it.
    """
    tarball = cache_dir / f"{package}-{version}.tgz"
    if tarball.is_file():
        return tarball
    npm = shutil.which("npm")
    if npm is None:
        raise PublishError(
            f"npm is not on PATH; it is needed once to fetch {package}@{version} (`npm pack`) into {cache_dir}. "
            "Install Node.js and npm (Debian: apt-get install npm), or copy the tarballs listed in "
            "benchmarks/publish_offline.py into that directory."
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    command = [npm, "pack", f"{package}@{version}", "--json", "--pack-destination", str(cache_dir)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=cache_dir)
    if result.returncode != 0:
        raise PublishError(f"`{' '.join(command[1:])}` failed (exit {result.returncode}):\n{result.stderr.strip()}")
    packed = cache_dir / json.loads(result.stdout)[0]["filename"]
    if packed != tarball:
        packed.replace(tarball)
    return tarball


def read_package_file(tarball: Path, file: str) -> bytes:
    """One file of an npm tarball, by its path inside the package (npm puts it under one top directory)."""
    with tarfile.open(tarball, "r:gz") as archive:
        for member in archive.getmembers():
            if member.isfile() and member.name.split("/", 1)[-1] == file:
                extracted = archive.extractfile(member)
                if extracted is not None:
                    return extracted.read()
    raise PublishError(f"{tarball.name} has no file {file!r}")


def _relative_css_assets(css: bytes) -> list[str]:
    """Relative ``url(...)`` targets of a stylesheet (Bootstrap's glyphicon fonts), without query or fragment."""
    text = _CSS_COMMENT.sub("", css.decode("utf-8", errors="replace"))
    assets = []
    for match in _CSS_URL.finditer(text):
        url = (match.group(2) if match.group(2) is not None else match.group(4)).strip()
        if url and not is_external_url(url) and not url.lower().startswith(_LOCAL_SCHEMES) and not url.startswith("#"):
            assets.append(re.split(r"[?#]", url, maxsplit=1)[0])
    return sorted(set(assets))


def _library_for(url: str) -> Library:
    path = urlsplit(url).path
    for library in LIBRARIES:
        if path.endswith(library.url_path_suffix):
            return library
    raise PublishError(
        f"asv's HTML loads {url}, which this command does not know how to vendor (a new asv version?). "
        "Add it to LIBRARIES in benchmarks/publish_offline.py."
    )


_TAG = re.compile(r"<(?:script|link)\b[^>]*>", re.IGNORECASE)
_ATTRIBUTE = re.compile(r"""(?<=\s)(src|href|integrity)\s*=\s*(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)


@dataclasses.dataclass
class VendoredFile:
    library: Library
    local_path: str  # relative to the published directory
    original_url: str
    original_integrity: str
    integrity: str  # what the rewritten tag carries
    matched: bool  # the npm file has the hash asv pins


def vendor_html(html_dir: Path, cache_dir: Path) -> list[VendoredFile]:
    """Copy every CDN file that the HTML under ``html_dir`` loads into ``vendor/`` and point the tags there."""
    vendored: dict[str, VendoredFile] = {}
    for page in sorted(html_dir.glob("*.html")):
        text = page.read_text(encoding="utf-8")

        def rewrite(tag_match: re.Match[str]) -> str:
            tag = tag_match.group()
            attributes = {m.group(1).lower(): m for m in _ATTRIBUTE.finditer(tag)}
            url_attribute = attributes.get("src") or attributes.get("href")
            if url_attribute is None or not is_external_url(html.unescape(url_attribute.group(3))):
                return tag
            url = html.unescape(url_attribute.group(3))
            entry = vendored.get(url) or _vendor_one(url, _integrity_of(attributes), html_dir, cache_dir)
            vendored[url] = entry
            # Replace attribute values from the last to the first so that earlier offsets stay valid.
            replacements = [(url_attribute, entry.local_path)]
            if "integrity" in attributes and not entry.matched:
                replacements.append((attributes["integrity"], entry.integrity))
            for match, value in sorted(replacements, key=lambda item: -item[0].start(3)):
                tag = tag[: match.start(3)] + value + tag[match.end(3) :]
            library = entry.library
            comment = f"<!-- {MARK}: npm {library.package}@{library.version} {library.file}"
            if entry.matched:
                comment += ", the bytes asv's integrity hash pins"
            elif entry.original_integrity:
                comment += f"; integrity recomputed for this file ({library.note}), see {VENDOR_DIR}/README.txt"
            return comment + " -->\n    " + tag

        new_text = _TAG.sub(rewrite, text)
        if new_text != text:
            page.write_text(new_text, encoding="utf-8")
    entries = list(vendored.values())
    if entries:
        _write_manifest(html_dir / VENDOR_DIR / "README.txt", entries)
    return entries


def _integrity_of(attributes: dict[str, re.Match[str]]) -> str:
    match = attributes.get("integrity")
    return match.group(3).strip() if match else ""


def _vendor_one(url: str, original_integrity: str, html_dir: Path, cache_dir: Path) -> VendoredFile:
    library = _library_for(url)
    tarball = npm_tarball(library.package, library.version, cache_dir)
    data = read_package_file(tarball, library.file)
    package_dir = f"{VENDOR_DIR}/{library.package}-{library.version}"
    local_path = f"{package_dir}/{library.file}"
    target = html_dir / local_path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    if library.file.endswith(".css"):  # fonts and images the stylesheet loads, at the same relative place
        for asset in _relative_css_assets(data):
            asset_file = posixpath.normpath(posixpath.join(posixpath.dirname(library.file), asset))
            asset_target = html_dir / package_dir / asset_file
            asset_target.parent.mkdir(parents=True, exist_ok=True)
            asset_target.write_bytes(read_package_file(tarball, asset_file))
    # An integrity attribute may list several hashes; the browser accepts the file if the strongest one matches.
    pinned = original_integrity.split()
    matched = bool(pinned) and any(sri_hash(data, value.split("-", 1)[0]) == value.split("?")[0] for value in pinned)
    algorithm = pinned[0].split("-", 1)[0] if pinned else "sha384"
    integrity = original_integrity if matched or not pinned else sri_hash(data, algorithm)
    return VendoredFile(library, local_path, url, original_integrity, integrity, matched)


def _write_manifest(path: Path, entries: list[VendoredFile]) -> None:
    lines = [
        f"Local copies of the files asv's dashboard loads from CDNs, written by {MARK}",
        "(python -m benchmarks.publish_offline). Taken from npm packages with `npm pack NAME@VERSION`.",
        "",
        "integrity: 'asv' = the file has the bytes asv's integrity hash pins, which the page still checks;",
        "'recomputed' = the npm file differs from what asv pinned (reason given), so the page checks the hash of",
        "this local file instead.",
        "",
    ]
    for entry in entries:
        library = entry.library
        status = "asv" if entry.matched else ("recomputed" if entry.original_integrity else "none given by asv")
        lines += [
            f"{entry.local_path}",
            f"    from npm {library.package}@{library.version} file {library.file}",
            f"    replaces {entry.original_url}",
            f"    integrity: {status}: {entry.integrity}" + (f" ({library.note})" if library.note else ""),
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def asv_publish(html_dir: Path | None) -> None:
    """``asv publish`` from the repository root (``--no-pull``: the results are in the working tree)."""
    command = [sys.executable, "-m", "asv", "publish", "--no-pull"]
    if html_dir is not None:
        command += ["--html-dir", str(html_dir)]
    if subprocess.run(command, cwd=REPO_ROOT).returncode != 0:
        raise PublishError(f"`{' '.join(command[1:])}` failed (see above)")


def configured_html_dir() -> Path:
    """``html_dir`` of asv.conf.json (which allows // comments), relative to the repository root."""
    text = (REPO_ROOT / "asv.conf.json").read_text(encoding="utf-8")
    config = json.loads("\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//")))
    return REPO_ROOT / config.get("html_dir", "html")


def check(html_dir: Path) -> int:
    """Print every external reference under ``html_dir``; 0 if there is none, else 1."""
    if not (html_dir / "index.html").is_file():
        print(f"publish_offline: {html_dir} has no index.html (run asv publish first)", file=sys.stderr)
        return 1
    found = find_external_references(html_dir)
    for reference in found:
        print(f"publish_offline: external reference: {reference}", file=sys.stderr)
    if found:
        print(f"publish_offline: {len(found)} external reference(s) in {html_dir}", file=sys.stderr)
        return 1
    print(f"publish_offline: {html_dir} loads nothing from another host")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.publish_offline", description=__doc__.split("\n")[0])
    parser.add_argument("--html-dir", type=Path, help="output directory (default: html_dir of asv.conf.json)")
    parser.add_argument(
        "--cache-dir", type=Path, default=DEFAULT_CACHE, help=f"npm tarballs are kept here (default: {DEFAULT_CACHE})"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="only check that the directory loads nothing external")
    mode.add_argument("--no-publish", action="store_true", help="skip `asv publish`; vendor what is there")
    args = parser.parse_args(argv)
    html_dir = (args.html_dir or configured_html_dir()).resolve()
    if args.check:
        return check(html_dir)
    try:
        if not args.no_publish:
            asv_publish(args.html_dir and html_dir)
        entries = vendor_html(html_dir, args.cache_dir)
    except PublishError as error:
        print(f"publish_offline: {error}", file=sys.stderr)
        return 1
    for entry in entries:
        status = (
            "same bytes as asv's integrity hash" if entry.matched else f"integrity recomputed ({entry.library.note})"
        )
        print(f"publish_offline: {entry.local_path}: {status}")
    if entries:
        print(f"publish_offline: {len(entries)} file(s) vendored; list in {html_dir / VENDOR_DIR / 'README.txt'}")
    else:
        print(f"publish_offline: no CDN file left to vendor in {html_dir}")
    return check(html_dir)


if __name__ == "__main__":
    sys.exit(main())

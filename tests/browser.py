"""Headless Chromium for tests that check an HTML report really renders.

Usage::

    from browser import chromium_or_skip, render  # tests/ is on sys.path under pytest

    def test_report(tmp_path):
        chromium_or_skip()
        page = render(report_html, tmp_path, screenshot=tmp_path / "shot.png")
        assert "<h1>" in page.dom and page.screenshot_ok

``render`` runs Debian's ``chromium`` once with ``--dump-dom`` (the DOM after scripts and the load
event, so inline scripts can record what rendered, e.g. images' natural sizes) and optionally once
with ``--screenshot``. Every network-touching feature is switched off; a fresh profile folder is
used per call so concurrent tests never share state.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
]


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        p = shutil.which(name)
        if p:
            return p
    return None


def chromium_or_skip() -> str:
    """The Chromium executable, or skip the test (``make browser`` installs it)."""
    p = chromium_path()
    if p is None:
        pytest.skip("headless Chromium is not installed (run `make browser`)")
    return p


@dataclasses.dataclass
class Rendered:
    dom: str
    screenshot: Path | None
    stderr: str

    @property
    def screenshot_ok(self) -> bool:
        return self.screenshot is not None and self.screenshot.is_file() and self.screenshot.stat().st_size > 1000


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    env = dict(os.environ, HOME=tempfile.gettempdir())
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)


def render(html_path: str | Path, workdir: str | Path, *, screenshot: str | Path | None = None,
           window: tuple[int, int] = (1280, 2000), timeout: float = 120.0,
           virtual_time_ms: int = 5000) -> Rendered:
    """Load ``html_path`` in headless Chromium; return its DOM (and a PNG screenshot if asked).

    Raises ``AssertionError`` (with Chromium's stderr) when Chromium fails or prints no DOM.
    """
    exe = chromium_or_skip()
    html_path = Path(html_path).resolve()
    url = html_path.as_uri()
    workdir = Path(workdir)
    common = FLAGS + [f"--virtual-time-budget={virtual_time_ms}", f"--window-size={window[0]},{window[1]}"]
    with tempfile.TemporaryDirectory(dir=workdir, prefix="chromium-profile-") as prof:
        res = _run([exe, *common, f"--user-data-dir={prof}", "--dump-dom", url], timeout)
    assert res.returncode == 0 and "<html" in res.stdout.lower(), (
        f"chromium failed (exit {res.returncode}): {res.stderr[-2000:]}")
    shot = None
    if screenshot is not None:
        shot = Path(screenshot).resolve()
        with tempfile.TemporaryDirectory(dir=workdir, prefix="chromium-profile-") as prof:
            r2 = _run([exe, *common, f"--user-data-dir={prof}", f"--screenshot={shot}", url], timeout)
        assert r2.returncode == 0, f"chromium screenshot failed: {r2.stderr[-2000:]}"
    return Rendered(dom=res.stdout, screenshot=shot, stderr=res.stderr)

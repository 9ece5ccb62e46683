"""A page printed to PDF (and photographed) by a real headless Chromium.

Chromium lays the page out as a reader's browser does, so the PDF is the HTML page itself,
with its tables and inlined pictures, and nothing is drawn twice. It is a system program
(Debian: ``apt-get install chromium``), not a Python package: :func:`find_browser` says so
clearly where it is missing, and the callers ask before any long work.

Each run gets its own throw-away profile folder, so that two runs (or a user's open browser)
never share one, and the PDF is written whole (:func:`~cochleaai.io.outputs.written_whole`).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional, Sequence

from cochleaai.errors import CochleaAIError
from cochleaai.io.outputs import written_whole

#: Program names tried in turn; ``$COCHLEAAI_BROWSER`` names another.
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: Seconds one page may take.
BROWSER_TIMEOUT_S = 120
#: The start of every PDF file.
PDF_MAGIC = b"%PDF-"


def find_browser() -> str:
    """The headless Chromium to use, or a clear error naming how to install one."""
    named = os.environ.get("COCHLEAAI_BROWSER")
    for name in ([named] if named else []) + list(BROWSER_NAMES):
        found = shutil.which(name)
        if found:
            return found
    if named:
        raise CochleaAIError(f"COCHLEAAI_BROWSER names '{named}', which is not a program here.")
    raise CochleaAIError("A PDF needs Chromium, which is not installed here (Debian and Ubuntu: "
                         "'apt-get install chromium'); the HTML page holds the same report.")


def available() -> bool:
    """Whether :func:`find_browser` finds a Chromium."""
    try:
        find_browser()
        return True
    except CochleaAIError:
        return False


def _run(browser: str, arguments: Sequence[str], page: Path) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="cochleaai-browser-") as profile:
        # --no-sandbox: Chromium refuses to start as root with its sandbox (containers, CI).
        command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                   f"--user-data-dir={profile}", *arguments, page.resolve().as_uri()]
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            raise CochleaAIError(f"Chromium took more than {BROWSER_TIMEOUT_S} s on '{page}'.") from exc


def print_pdf(page, pdf, browser: Optional[str] = None) -> Path:
    """Print the HTML file ``page`` to ``pdf`` (A4, no header or footer lines, backgrounds kept).

    The file appears whole or not at all; a run that writes no PDF raises with Chromium's own
    last words."""
    page, pdf = Path(page), Path(pdf)
    if not page.is_file():
        raise CochleaAIError(f"No page to print: '{page}' is not a file.")
    browser = browser or find_browser()
    with written_whole(pdf) as partial:
        done = _run(browser, ["--no-pdf-header-footer", "--print-to-pdf-no-header",
                              f"--print-to-pdf={partial}"], page)
        if not partial.is_file() or partial.read_bytes()[:len(PDF_MAGIC)] != PDF_MAGIC:
            said = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no message"]
            raise CochleaAIError(f"Chromium printed no PDF of '{page}' (exit {done.returncode}: {said[0]}).")
    return pdf


def screenshot(page, png, width: int = 1200, height: int = 1600, browser: Optional[str] = None) -> Path:
    """A picture of the top of the HTML file ``page`` in a window of ``width`` x ``height``."""
    page, png = Path(page), Path(png)
    browser = browser or find_browser()
    with written_whole(png) as partial:
        done = _run(browser, [f"--screenshot={partial}", f"--window-size={width},{height}"], page)
        if not partial.is_file():
            raise CochleaAIError(f"Chromium took no screenshot of '{page}' (exit {done.returncode}).")
    return png


def page_text(page, browser: Optional[str] = None) -> str:
    """The page's document as Chromium builds it (scripts run, entities resolved)."""
    page = Path(page)
    return _run(browser or find_browser(), ["--dump-dom"], page).stdout

"""Printing a page with headless Chromium: the refusals (any machine) and a real print (where
Chromium is installed)."""
from __future__ import annotations

import os

import pytest

from cochleaai.errors import CochleaAIError
from cochleaai.io import browser
from cochleaai.io.outputs import PARTIAL_PREFIX

PAGE = "<html><head><title>t</title></head><body><h1>Cochlea</h1><p>&plusmn; 1 mm</p></body></html>"


def test_a_missing_browser_is_named_with_how_to_install_one(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("COCHLEAAI_BROWSER", raising=False)
    assert not browser.available()
    with pytest.raises(CochleaAIError, match="apt-get install chromium"):
        browser.find_browser()
    monkeypatch.setenv("COCHLEAAI_BROWSER", "no-such-browser")
    with pytest.raises(CochleaAIError, match="COCHLEAAI_BROWSER names 'no-such-browser'"):
        browser.find_browser()


def test_a_browser_that_prints_nothing_leaves_nothing(tmp_path):
    page = tmp_path / "page.html"
    page.write_text(PAGE)
    with pytest.raises(CochleaAIError, match="printed no PDF"):
        browser.print_pdf(page, tmp_path / "page.pdf", browser="/bin/false")
    assert sorted(os.listdir(tmp_path)) == ["page.html"]          # no PDF, no partial folder
    with pytest.raises(CochleaAIError, match="not a file"):
        browser.print_pdf(tmp_path / "missing.html", tmp_path / "page.pdf", browser="/bin/false")


@pytest.mark.skipif(not browser.available(), reason="no Chromium here (Debian: apt-get install chromium)")
def test_chromium_prints_the_page_and_reads_its_text(tmp_path):
    page = tmp_path / "page.html"
    page.write_text(PAGE)
    pdf = browser.print_pdf(page, tmp_path / "out" / "page.pdf")
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF") and b"/Type /Page" in data
    assert not [n for n in os.listdir(pdf.parent) if n.startswith(PARTIAL_PREFIX)]
    assert "<h1>Cochlea</h1>" in browser.page_text(page) and "\u00b1 1 mm" in browser.page_text(page)

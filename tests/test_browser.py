"""A real browser (Debian's chromium, driven by Playwright) against the running app."""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (apt-get install chromium)")
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = free_port()
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "HF_HUB_OFFLINE": "1",
           "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app exited: {proc.stdout.read().decode()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            time.sleep(1)
    else:
        proc.kill()
        raise RuntimeError("app did not start within 180 s")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        page = browser.new_page()
        page.goto(server)
        yield page
        browser.close()


def decode(page, text):
    box = page.locator("#input-text textarea")
    box.fill(text)
    page.locator("#decode-btn").click()


def test_typing_a_sentence_shows_every_decoder_output(page):
    decode(page, "a small dog barked at the mailman")
    results = page.locator("#results")
    for name in ("phrase-bank", "generative", "ret"):
        results.get_by_text(name, exact=True).first.wait_for(timeout=120_000)
    assert "failed to load" not in results.inner_text()


def test_empty_text_shows_an_error_and_the_page_keeps_working(page):
    decode(page, "")
    page.get_by_text("the text box is empty").first.wait_for(timeout=60_000)
    decode(page, "the river flooded the valley after the storm")
    page.locator("#note").get_by_text("44 characters").wait_for(timeout=120_000)

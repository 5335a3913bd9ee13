"""A real browser (Debian's chromium, driven by Playwright) against the running app."""
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"  # Debian's package; `playwright install` cannot download a browser here
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="/usr/bin/chromium is absent: apt-get install -y chromium to run the browser test")
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "HF_HUB_OFFLINE": "1",
           "GRADIO_ANALYTICS_ENABLED": "False"}
    log_path = tmp_path_factory.mktemp("app") / "app.log"
    log = open(log_path, "wb")  # a file, not a pipe: a chatty app must never block on a full pipe
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 180
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"app exited with {proc.returncode}: {log_path.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError(f"app did not start within 180 s: {log_path.read_text()[-3000:]}")
                time.sleep(1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


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


def test_typing_a_sentence_shows_the_phrase_bank_output(page):
    from decoders import Sampling, get_decoder
    from decoders.encoder import encode

    sentence = "a small dog barked at the mailman"
    expected = get_decoder("phrase-bank").decode(encode([sentence]), Sampling())[0][0].text
    decode(page, sentence)
    results = page.locator("#results")
    results.get_by_text(expected, exact=True).first.wait_for(timeout=180_000)
    shown = results.inner_text()
    for name in ("phrase-bank", "generative", "ret"):  # every default decoder has a row
        assert name in shown
    assert "[failed" not in shown


def test_empty_text_shows_an_error_and_the_page_keeps_working(page):
    decode(page, "")
    page.get_by_text("the text box is empty").first.wait_for(timeout=60_000)
    decode(page, "the river flooded the valley after the storm")
    page.locator("#note").get_by_text("44 characters").wait_for(timeout=180_000)

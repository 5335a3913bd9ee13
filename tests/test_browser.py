"""A real browser (Debian's chromium, driven by Playwright) against the running app: decode by
Enter, an error keeps the results, a card per default decoder (also at 420 px), review rate ->
export, the benchmark tab's charts, and no request leaving the server."""
import csv
import io
import re
from pathlib import Path

import pytest

from decoders import default_decoders

CHROMIUM = "/usr/bin/chromium"  # Debian's package; `playwright install` cannot download a browser here
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="/usr/bin/chromium is absent: apt-get install -y chromium to run the browser test")
SENTENCE = "a small dog barked at the mailman"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def hosts():
    return set()


@pytest.fixture(scope="module")
def page(browser, app_server, hosts):
    page = browser.new_page(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    page.on("request", lambda r: hosts.add(re.sub(r"^\w+://([^/]+).*", r"\1", r.url)))
    page.goto(app_server["url"])
    yield page
    page.close()


def decode_by_enter(page, text):
    box = page.locator("#input-text textarea, #input-text input").first
    box.fill(text)
    box.press("Enter")


def cards(page, where="#cards"):
    return page.locator(f"{where} .card").evaluate_all("els => els.map(e => e.dataset.decoder)")


@pytest.fixture(scope="module")
def decoded(page):
    """The page after one decode by Enter: (decoder names on the cards, the cards' text)."""
    decode_by_enter(page, SENTENCE)
    page.locator("#cards .card").nth(len(default_decoders()) - 1).wait_for(timeout=120_000)
    return cards(page), page.locator("#cards").inner_text()


def test_enter_decodes_and_every_default_decoder_gets_a_card(decoded):
    from decoders import Sampling, get_decoder
    from decoders.encoder import encode

    names, text = decoded
    assert names == default_decoders()
    assert get_decoder("phrase-bank").decode(encode([SENTENCE]), Sampling())[0][0].text in text
    assert "failed" not in text and text.count("cos ") >= len(names)


def test_an_error_shows_a_message_and_keeps_the_last_results(page, decoded):
    before = page.locator("#cards").inner_html()
    decode_by_enter(page, "   ")
    page.get_by_text("text is empty: type a sentence").first.wait_for(timeout=30_000)
    page.wait_for_timeout(500)
    assert page.locator("#cards").inner_html() == before
    assert "Error" not in page.locator("#cards").inner_text()  # no error badge over the kept results
    assert page.locator("#note").inner_text().startswith("Decoded the all-mpnet-base-v2 embedding")


def test_cards_wrap_inside_a_420_px_screen(page, decoded):
    """The decoded page narrowed to a phone's width: the cards stack in one column, nothing cut off."""
    page.set_viewport_size({"width": 420, "height": 900})
    try:
        page.wait_for_function("document.documentElement.scrollWidth <= 420", timeout=10_000)
        boxes = page.locator("#cards .card").evaluate_all("els => els.map(e => e.getBoundingClientRect().toJSON())")
        assert len(boxes) == len(default_decoders())
        assert all(b["left"] >= 0 and b["right"] <= 420 for b in boxes), boxes
        assert len({round(b["left"]) for b in boxes}) == 1  # one column: stacked, not cut off
    finally:
        page.set_viewport_size({"width": 1400, "height": 900})


def test_review_rate_save_and_export(page, app_server):
    page.get_by_role("tab", name="Review").click()
    page.locator("#reviewer input, #reviewer textarea").first.fill("ana")
    page.locator("#review-n input").fill("2")
    page.locator("#review-load").click()
    page.locator("#review-item").get_by_text("item 1 of 2").wait_for(timeout=120_000)
    page.locator("#rate-phrase-bank").get_by_label("4").check()
    page.locator("#rate-generative").get_by_label("2").check()
    page.locator("#note-generative input, #note-generative textarea").first.fill("wrong animal")
    page.locator("#review-save").click()
    page.locator("#review-item").get_by_text("item 2 of 2").wait_for(timeout=120_000)
    assert "phrase-bank" in page.locator("#review-summary").inner_text()
    page.locator("#review-export").click()
    link = page.locator("#review-csv a").first
    link.wait_for(timeout=30_000)
    with page.expect_download() as dl:
        link.click()
    rows = list(csv.DictReader(io.StringIO(Path(dl.value.path()).read_text())))
    got = sorted((r["reviewer"], r["review_set"], r["item"], r["decoder"], r["rating"], r["note"]) for r in rows)
    assert got == [("ana", "test[:2]", "0", "generative", "2", "wrong animal"), ("ana", "test[:2]", "0", "phrase-bank", "4", "")]


def test_benchmark_tab_renders_its_charts_and_tables_without_paths(page):
    page.get_by_role("tab", name="Benchmark").click()
    for chart in ("#bench-quality", "#bench-params", "#bench-latency"):
        page.locator(f"{chart} .js-plotly-plot").wait_for(timeout=60_000)
        assert page.locator(f"{chart} .xtick text, {chart} .ytick text").count() > 2, chart
    table = page.locator("#bench-table").inner_text()
    import app
    from eval import charts
    latest = charts.latest(charts.load_results(app.RESULTS_DIR))
    ns = latest.loc[latest["decoder"] == "phrase-bank", "n"].dropna()   # the bank's latest run on each set
    assert "phrase-bank" in table and any(f"{int(n):,}" in table for n in ns)
    page.locator("#bench-sample-cards .card").first.wait_for(timeout=30_000)  # the sample browser shows input 0
    assert page.locator("#bench-sample input").input_value().startswith("0: ")
    assert cards(page, "#bench-sample-cards")[:3] == ["phrase-bank", "generative", "ret"]
    text = page.locator("body").inner_text()
    assert not re.search(r"/(root|work|home|tmp)/", text)


def test_the_page_requests_nothing_outside_the_server(hosts, app_server):
    assert hosts == {re.sub(r"^\w+://([^/]+).*", r"\1", app_server["url"])}

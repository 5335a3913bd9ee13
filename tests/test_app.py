"""The app's functions called in-process: the API functions, the UI handlers, the rendering, and
every bad input of issue 13's table (each refused with the input and the limit named)."""
import json
import re

import gradio as gr
import numpy as np
import pytest

import app
from decoders import Decoded, Decoder, get_decoder
from decoders.encoder import encode
from eval.metrics import sentence_bleu

SAMPLING = [0, 0, 1, 16, 1, 0]  # temperature, top_k, top_p, max_new_tokens, num_samples, seed: greedy, short
SENTENCE = "a small dog barked at the mailman"
FAST = ["phrase-bank", "generative"]


@pytest.fixture(scope="module")
def rows():
    """/decode_text called in-process, once for the module (every default decoder, the hybrid
    included, is decoded through the running server in test_api.py and test_browser.py)."""
    return app.decode_text(SENTENCE, decoders=["phrase-bank", "generative", "ret"], max_new_tokens=16)


def test_decode_text_returns_one_scored_row_per_decoder(rows):
    assert [r["decoder"] for r in rows] == ["phrase-bank", "generative", "ret"]
    for r in rows:
        assert set(app.API_KEYS) <= set(r) and "error" not in r, r
        assert isinstance(r["text"], str) and r["text"].strip()
        assert -1 <= r["cos"] <= 1 and 0 <= r["bleu"] <= 100 and 0 <= r["bertscore"] <= 1
        assert r["latency_ms"] > 0 and r["params"] >= 0
        assert r["bleu"] == round(sentence_bleu(r["text"], SENTENCE), 2)
    bank = get_decoder("phrase-bank").decode(encode([SENTENCE]), app.Sampling())[0][0].text
    assert rows[0]["text"] == bank


def test_compare_handler_renders_a_card_per_decoder_with_human_params_and_marked_words():
    html, fig, note = app.show_compare(SENTENCE, FAST, *SAMPLING)
    assert re.findall(r'class="card" data-decoder="([^"]+)"', html) == FAST
    assert "1.93M params" in html and "0 params" in html
    assert '<mark class="hit">' in html
    assert list(fig.data[0].y) == FAST and fig.layout.xaxis.type == "log"
    assert "33 characters" in note and "greedy" in note


def test_highlight_marks_only_words_of_the_reference_with_clipped_counts_and_escapes():
    out = app.highlight("The the <b>cat</b> sat", "the cat")
    # "the" once in the reference: only the first "The" is marked; markup in the output is escaped
    assert out == '<mark class="hit">The</mark> the &lt;b&gt;<mark class="hit">cat</mark>&lt;/b&gt; sat'
    assert app.highlight("a <i>", None) == "a &lt;i&gt;"


@pytest.mark.parametrize("n, text", [(1_934_595, "1.93M"), (756_352, "756K"), (2_690_947, "2.69M"), (0, "0"),
                                     (109_486_464, "109M"), (None, "-")])
def test_params_in_human_units(n, text):
    assert app.human(n) == text


def test_interpolate_walks_from_a_to_b_and_scores_against_the_nearer_sentence():
    a, b = "the cat sat on the mat", "the stock market fell sharply today"
    rows = app.interpolate(a, b, steps=3, decoders=["phrase-bank"], max_new_tokens=16)
    assert [r["alpha"] for r in rows] == [0.0, 0.5, 1.0]
    assert [r["reference"] for r in rows] == ["A", "A", "B"]
    assert rows[0]["bleu"] == round(sentence_bleu(rows[0]["text"], a), 2)
    assert rows[2]["bleu"] == round(sentence_bleu(rows[2]["text"], b), 2)
    ea, eb = encode([a, b])
    bank = get_decoder("phrase-bank")
    assert rows[0]["text"] == bank.decode(ea[None])[0][0].text and rows[2]["text"] == bank.decode(eb[None])[0][0].text
    cards, fig, note = app.show_sweep(a, b, 3, ["phrase-bank"], *SAMPLING)
    assert cards.count("alpha ") == 3 and "3 points" in note
    assert list(fig.data[0].x) == [0.0, 0.5, 1.0]


def test_decode_vector_decodes_every_row_and_has_no_reference_scores():
    a, b = encode(["the river flooded the valley", "a red apple"])
    rows = app.decode_vector([a.tolist(), (b * 1e-30).tolist()], decoders=["phrase-bank"])
    assert [r["row"] for r in rows] == [0, 1]
    bank = get_decoder("phrase-bank")
    assert rows[1]["text"] == bank.decode(b[None])[0][0].text  # 1e-30 is a direction like any other
    assert all(r["bleu"] is None and r["bertscore"] is None and r["cos"] > 0.5 for r in rows)


@pytest.mark.parametrize("scale", [1e38, 1e-30])
def test_extreme_but_finite_vectors_are_decoded_as_directions(scale):
    e = encode(["the sun rose over the hills"])[0]
    rows = app.decode_vector((e * scale / np.abs(e).max()).astype(np.float32).tolist(), decoders=["phrase-bank"])
    assert rows[0]["text"] == get_decoder("phrase-bank").decode(e[None])[0][0].text


def test_playground_noise_and_arithmetic_handlers():
    cards, _, note = app.show_noise("the river flooded the valley", 0.0, 0, ["phrase-bank"], *SAMPLING)
    assert "cos 1.000 with the text's embedding" in note and 'data-decoder="phrase-bank"' in cards
    cards, _, note = app.show_arithmetic("a king", "a man", "a woman", ["phrase-bank"], *SAMPLING)
    assert "normalise(e(A) - e(B) + e(C))" in note and 'data-decoder="phrase-bank"' in cards


def test_uploaded_multi_row_file_shows_each_row(tmp_path):
    path = tmp_path / "two.npy"
    np.save(path, encode(["a cat", "a dog"]))
    cards, _, note = app.show_vector("", str(path), ["phrase-bank"], *SAMPLING)
    assert "row 1 of 2" in cards and "row 2 of 2" in cards and "2 vector(s) from the uploaded file two.npy" in note


# ----------------------------------------------------------------------------- bad input (issue 13's table)

def write(path, payload):
    if isinstance(payload, np.ndarray):
        np.save(path, payload)
    else:
        path.write_text(payload)
    return str(path)


@pytest.mark.parametrize("name, payload, message", [
    ("empty.npy", np.zeros((0, 768), np.float32), "empty.npy is empty"),
    ("obj.json", json.dumps({"vector": [0.1] * 768}), "obj.json holds a JSON dict; expected a list of 768 numbers"),
    ("c.npy", np.ones(768, np.complex64), "c.npy holds complex numbers"),
    ("many.npy", np.ones((17, 768), np.float32), "many.npy has 17 rows; at most 16"),
    ("zero.npy", np.zeros(768, np.float32), "all-zero"),
])
def test_bad_vector_files_get_a_message_naming_file_and_limit(tmp_path, name, payload, message):
    path = write(tmp_path / name, payload)
    with pytest.raises(gr.Error, match=message):
        app.check_vector("", path, ["phrase-bank"], *SAMPLING)


def test_a_file_over_10_mb_is_refused(tmp_path):
    path = tmp_path / "big.npy"
    with open(path, "wb") as f:
        f.truncate(11 * 2**20)
    with pytest.raises(gr.Error, match="big.npy is 11.0 MB; the upload limit is 10 MB"):
        app.check_vector("", str(path), ["phrase-bank"], *SAMPLING)


@pytest.mark.parametrize("kwargs, message", [
    (dict(text=""), "text is empty"),
    (dict(text="caf\ud800"), r"invalid character U\+D800 at position 3"),
    (dict(text="x" * 100_000), "text has 100,000 characters; the limit is 2,000"),
    (dict(temperature="nan"), r"temperature must be a number in \[0, 2\], got nan"),
    (dict(temperature=5), r"temperature must be a number in \[0, 2\], got 5"),
    (dict(seed="abc"), r"seed must be a whole number in \[0, 4294967295\], got 'abc'"),
    (dict(seed=2**80), r"seed must be a whole number in \[0, 4294967295\], got 1208925819614629174706176"),
    (dict(seed=1.5), "seed must be a whole number .*got 1.5"),
    (dict(top_k=2.5), "top_k must be a whole number .*got 2.5"),
    (dict(top_p=0), r"top_p must be a number in \[0.01, 1\]"),
    (dict(num_samples=50), r"num_samples must be a whole number in \[1, 8\], got 50"),
    (dict(max_new_tokens=1000), r"max_new_tokens must be a whole number in \[1, 63\]"),
    (dict(decoders=["nope"]), "unknown decoder.*'nope'; valid decoders: phrase-bank"),
    (dict(decoders=[]), "choose at least one decoder"),
    (dict(hybrid_budget_ms=50), r"hybrid_budget_ms must be a number in \[100, 10000\], got 50"),
    (dict(hybrid_budget_ms="soon"), "hybrid_budget_ms must be a number"),
])
def test_bad_api_values_raise_a_gradio_error_naming_the_parameter_and_limit(kwargs, message):
    args = dict(text="hello", decoders=["phrase-bank"]) | kwargs
    with pytest.raises(gr.Error, match=message):
        app.decode_text(**args)


@pytest.mark.parametrize("call, message", [
    (lambda: app.decode_vector([], decoders=["phrase-bank"]), "vector is empty"),
    (lambda: app.decode_vector([1.0, 2.0], decoders=["phrase-bank"]), "vector has 2 numbers per row; expected 768"),
    (lambda: app.decode_vector([[0.1] * 768] * 17, decoders=["phrase-bank"]), "vector has 17 rows; at most 16"),
    (lambda: app.decode_vector({"a": 1}, decoders=["phrase-bank"]), "vector holds"),
    (lambda: app.interpolate("a", "b", steps=12), r"steps must be a whole number in \[2, 11\], got 12"),
    (lambda: app.interpolate("a", "", steps=3), "text_b is empty"),
])
def test_bad_vectors_and_paths_are_refused(call, message):
    with pytest.raises(gr.Error, match=message):
        call()


def test_user_errors_are_logged_as_one_line(caplog):
    with caplog.at_level("INFO", logger="decoder-lab"), pytest.raises(gr.Error):
        app.decode_text("hello", seed="abc")
    lines = [r for r in caplog.records if r.name == "decoder-lab"]
    assert len(lines) == 1 and lines[0].exc_info is None
    assert lines[0].getMessage() == "user error in /decode_text: seed must be a whole number in [0, 4294967295], got 'abc'"


# ----------------------------------------------------------------------------- failures and trajectories

class Stub(Decoder):
    """A decoder returning a fixed text and, optionally, a correction trajectory."""
    name = "hybrid"

    def __init__(self, trajectory=None):
        self.trajectory = trajectory

    def _decode(self, x, sampling):
        extra = {"trajectory": self.trajectory} if self.trajectory else {}
        return [[Decoded(self.trajectory[-1]["text"] if self.trajectory else "stub", 0.5, extra)] for _ in range(len(x))]

    @property
    def num_parameters(self):
        return 1234


TRAJECTORY = [{"step": 0, "text": "a dog at the mail", "cos": 0.61},
              {"step": 1, "text": "a small dog at the mailman", "cos": 0.78},
              {"step": 2, "text": "a small dog barked at the mailman", "cos": 0.97}]


def test_a_decoder_that_fails_shows_its_error_in_its_card_and_the_others_still_decode(monkeypatch):
    real = app.get_decoder

    def get(name, device="cpu"):
        if name == "generative":
            raise FileNotFoundError("assets/generative/model.safetensors not found; train it first")
        return real(name, device)

    monkeypatch.setattr(app, "get_decoder", get)
    html, fig, _ = app.show_compare("the sun rose over the hills", ["generative", "phrase-bank"], *SAMPLING)
    failed = re.search(r'class="card failed" data-decoder="generative">.*?</div></div>', html).group(0)
    assert "FileNotFoundError" in failed and "train it first" in failed
    assert re.findall(r'class="card" data-decoder="([^"]+)"', html) == ["phrase-bank"]
    assert list(fig.data[0].y) == ["phrase-bank"]
    rows = app.decode_text("the sun rose over the hills", decoders=["generative", "phrase-bank"])
    assert rows[0]["error"].startswith("FileNotFoundError") and rows[0]["text"] is None
    assert rows[1]["text"] and rows[1]["cos"] > 0


def test_a_returned_trajectory_is_drawn_as_a_chart_and_listed_step_by_step(monkeypatch):
    real = app.get_decoder
    monkeypatch.setattr(app, "get_decoder", lambda name, device="cpu": Stub(TRAJECTORY) if name == "hybrid" else real(name, device))
    html, _, _ = app.show_compare(SENTENCE, ["phrase-bank", "hybrid"], *SAMPLING)
    card = html[html.index('data-decoder="hybrid"'):]
    svg = re.search(r'<svg class="traj".*?</svg>', card).group(0)
    points = [tuple(map(float, p.split(","))) for p in re.search(r'points="([^"]+)"', svg).group(1).split()]
    assert len(points) == 3
    assert points[0][0] < points[1][0] < points[2][0]  # steps left to right
    assert points[0][1] > points[1][1] > points[2][1]  # cos rising = moving up (smaller y)
    steps = re.findall(r"<li>(.*?)</li>", card)
    assert len(steps) == 3 and "0.610" in steps[0] and "0.970" in steps[2]
    assert re.sub(r"<[^>]+>", "", steps[2]).endswith("a small dog barked at the mailman")
    assert 'data-decoder="phrase-bank"' in html and "<svg" not in html[:html.index('data-decoder="hybrid"')]
    rows = app.decode_text(SENTENCE, decoders=["hybrid"])
    assert rows[0]["trajectory"] == TRAJECTORY


# ----------------------------------------------------------------------------- review and benchmark

def test_review_handlers_save_ratings_per_reviewer_and_export(tmp_path, monkeypatch):
    monkeypatch.setenv("DECODER_LAB_REVIEW_DB", str(tmp_path / "r.sqlite"))
    inputs_file = tmp_path / "set.txt"
    inputs_file.write_text("the cat sat on the mat\n\na red apple\n")
    names = app.available_decoders()
    out = app.review_load("ana", "test", 5, str(inputs_file), ["phrase-bank"], *SAMPLING)
    state = out[0]
    assert state["items"] == ["the cat sat on the mat", "a red apple"] and state["set"] == "set.txt"
    assert "item 1 of 2" in out[1]
    values = [None, ""] * len(names)
    values[2 * names.index("phrase-bank")] = 4
    values[2 * names.index("phrase-bank") + 1] = "close"
    app.check_review_save(state, *values)
    out = app.review_step(state, 1, True, *values)
    assert out[0]["pos"] == 1 and "item 2 of 2" in out[1]
    summary = out[-1]
    assert summary.set_index("decoder").loc["phrase-bank", "ratings"] == 1
    with pytest.raises(gr.Error, match="rate at least one output"):
        app.check_review_save(out[0], *([None, ""] * len(names)))
    text = open(app.review_export(out[0])).read()
    assert "ana,set.txt,0,the cat sat on the mat,phrase-bank" in text and ",4,close," in text
    # a restarted app (a fresh load of the same set by the same reviewer) shows the saved rating and note
    again = app.review_load("ana", "test", 5, str(inputs_file), ["phrase-bank"], *SAMPLING)
    i = 2 + 4 * names.index("phrase-bank")  # state, item, then (column, card, rating, note) per decoder
    assert again[i + 2]["value"] == 4 and again[i + 3]["value"] == "close"
    other = app.review_load("ben", "test", 5, str(inputs_file), ["phrase-bank"], *SAMPLING)
    assert other[i + 2]["value"] is None  # another reviewer starts blank


def test_benchmark_dashboard_loads_the_committed_results_without_paths():
    chooser, note, table, q, p, lat_fig, lat_table, samples, table_csv, samples_csv = app.benchmark_view()
    assert "test" in chooser["choices"] and chooser["value"] == "test"
    assert {"phrase-bank", "generative", "ret"} <= set(table["decoder"])
    assert (table.loc[table["decoder"] == "generative", "n"] == "500").all()   # the latest: cpu-test-500
    assert table.duplicated(["decoder", "device"]).sum() == 0  # one row per decoder and device
    cells = table.astype(str).to_numpy().ravel().tolist() + lat_table.astype(str).to_numpy().ravel().tolist()
    assert not [c for c in cells if c.startswith("/") or "/root" in c or "/work" in c]
    assert len(q.data) == 4 and p.layout.xaxis.type == "log" and len(lat_fig.data) >= 2
    assert all(ax.showticklabels for ax in (lat_fig.layout.xaxis, lat_fig.layout.xaxis2))  # every panel has ticks
    assert samples["choices"] and samples["value"] == samples["choices"][0][1]
    note, cards = app.benchmark_sample("test", samples["value"])
    assert "Input 0" in note and re.findall(r'data-decoder="([^"]+)"', cards)[:3] == ["phrase-bank", "generative", "ret"]
    assert open(table_csv).readline().startswith("decoder,set,n,device")
    assert "idx" in open(samples_csv).readline()


def test_download_files_older_than_half_an_hour_are_removed(tmp_path, monkeypatch):
    import os
    import time

    monkeypatch.setattr(app, "EXPORT_DIR", tmp_path)
    old, recent = tmp_path / "old.csv", tmp_path / "recent.csv"
    old.write_text("x")
    recent.write_text("y")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    fresh = app.export_path("ratings")
    assert fresh.parent == tmp_path and fresh.name.startswith("ratings-") and fresh.suffix == ".csv"
    assert not old.exists() and recent.exists()


def test_the_hybrid_budget_reaches_the_hybrid_and_a_trajectory_without_cosines_still_renders(monkeypatch):
    seen = []

    class Budgeted(Stub):
        def configured(self, **overrides):
            seen.append(overrides)
            return Stub([{"step": 0, "text": "", "cos": None}, *TRAJECTORY[1:]])

    real = app.get_decoder
    monkeypatch.setattr(app, "get_decoder", lambda name, device="cpu": Budgeted() if name == "hybrid" else real(name, device))
    rows = app.decode_text(SENTENCE, decoders=["hybrid", "phrase-bank"], hybrid_budget_ms=400)
    assert seen == [{"budget_ms": 400.0}]  # only the hybrid is reconfigured
    html, _, _ = app.show_compare(SENTENCE, ["hybrid"], *SAMPLING, 700)
    assert seen[-1] == {"budget_ms": 700.0}
    assert len(re.search(r'points="([^"]+)"', html).group(1).split()) == 2  # the step without a cosine is not drawn
    assert re.findall(r"<li>(.*?)</li>", html)[0].endswith("(empty)")
    assert rows[0]["trajectory"][0]["cos"] is None

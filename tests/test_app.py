"""The app's handlers, called directly: end to end on text, on raw vectors, and on bad input."""
import json

import gradio as gr
import numpy as np
import pytest

import app

SAMPLING = dict(temperature=0, top_k=0, top_p=1, max_new_tokens=16, num_samples=1, seed=0)


def call(mode="Text", text="", pasted="", file_path=None, a="", b="", alpha=0.5, names=("phrase-bank",), **kw):
    s = {**SAMPLING, **kw}
    return app.run(mode, text, pasted, file_path, a, b, alpha, list(names), s["temperature"], s["top_k"],
                   s["top_p"], s["max_new_tokens"], s["num_samples"], s["seed"])


def test_decode_handler_runs_end_to_end_on_one_sentence():
    table, fig, note = call(text="a small dog barked at the mailman", names=app.DEFAULT_DECODERS)
    assert list(table["decoder"]) == app.DEFAULT_DECODERS
    assert table["output"].map(lambda s: isinstance(s, str) and len(s) > 0).all()
    assert not table["output"].str.startswith("[failed").any(), table["output"].tolist()
    assert table["round-trip cos"].between(-1, 1).all()
    assert table["BLEU"].notna().all() and table["BERTScore F1"].notna().all()
    assert (table["params"] >= 0).all() and table["latency ms"].gt(0).all()
    assert len(fig.data[0].x) == len(app.DEFAULT_DECODERS)


@pytest.mark.parametrize("suffix", [".npy", ".json", ".txt"])
def test_raw_vector_from_a_file_decodes_without_reference_scores(tmp_path, suffix):
    v = np.random.default_rng(0).standard_normal(768).astype(np.float32)
    path = tmp_path / f"v{suffix}"
    if suffix == ".npy":
        np.save(path, v[None])
    elif suffix == ".json":
        path.write_text(json.dumps(v.tolist()))
    else:
        path.write_text(" ".join(map(str, v)))
    table, _, note = call(mode="Vector", file_path=str(path), names=["phrase-bank", "generative"])
    assert len(table) == 2 and table["round-trip cos"].notna().all()
    assert table["BLEU"].isna().all() and "no reference text" in note


def test_pasted_vector_and_interpolation_decode():
    from decoders.encoder import encode
    e = encode(["the river flooded the valley"])[0]
    table, _, _ = call(mode="Vector", pasted=", ".join(f"{x:.6f}" for x in e))
    assert table["round-trip cos"].iloc[0] > 0.5
    table, _, note = call(mode="Interpolate", a="the cat sat on the mat", b="the stock market fell", alpha=0.25)
    assert "alpha" not in note or "0.25" in note
    sweep = app.interpolation_sweep("the cat sat on the mat", "the stock market fell", 3, ["phrase-bank"], 0, 0, 1, 16, 0)
    assert list(sweep.columns) == ["alpha", "phrase-bank"] and len(sweep) == 3


@pytest.mark.parametrize("kwargs, message", [
    (dict(text=""), "empty"),
    (dict(text="   "), "empty"),
    (dict(text="x" * 5000), "limit"),
    (dict(mode="Vector", pasted="1, 2, 3"), "768-dimensional"),
    (dict(mode="Vector", pasted="nan " * 768), "NaN"),
    (dict(mode="Vector", pasted="0 " * 768), "all-zero"),
    (dict(mode="Vector", pasted="one two three"), "numbers"),
    (dict(mode="Vector"), "give a 768-d vector"),
    (dict(text="hello", names=["nope"]), "valid decoders"),
    (dict(text="hello", names=[]), "at least one decoder"),
    (dict(text="hello", top_p=0), "top_p"),
])
def test_bad_input_raises_a_readable_gradio_error(kwargs, message):
    with pytest.raises(gr.Error, match=message):
        call(**kwargs)


def test_unreadable_file_is_a_readable_error_and_the_handler_still_serves(tmp_path):
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"not a numpy file")
    with pytest.raises(gr.Error, match="could not read a vector"):
        call(mode="Vector", file_path=str(bad))
    table, _, _ = call(text="the sun rose over the hills")
    assert len(table) == 1


def test_a_decoder_that_fails_to_load_shows_its_error_in_its_row_and_the_others_still_decode(monkeypatch):
    real = app.warm_decoder

    def broken(name):
        if name == "generative":
            raise FileNotFoundError("assets/generative/model.safetensors not found; train it first")
        return real(name)

    monkeypatch.setattr(app, "warm_decoder", broken)
    table, fig, _ = call(text="the sun rose over the hills", names=["generative", "phrase-bank"])
    assert list(table["decoder"]) == ["generative", "phrase-bank"]
    assert "FileNotFoundError" in table["output"][0] and "train it first" in table["output"][0]
    assert table["round-trip cos"].isna()[0] and table["latency ms"].isna()[0]
    assert not table["output"][1].startswith("[failed") and table["round-trip cos"][1] > 0
    assert list(fig.data[0].x) == ["phrase-bank"]


def test_benchmark_view_reads_committed_results_or_says_why_not():
    table, q, p, l, note = app.benchmark_view()
    assert isinstance(note, str) and note

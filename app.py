"""The embedding-to-text decoder lab: type a sentence (or bring a 768-d vector), decode its
all-mpnet-base-v2 embedding with every registered decoder, compare the outputs.

    python app.py                       # http://127.0.0.1:7860 (HOST / PORT override)
"""
from __future__ import annotations

import json
import os
import time
from functools import lru_cache
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from decoders import EMBED_DIM, Sampling, available_decoders, default_decoders, get_decoder, validate_embeddings
from decoders.encoder import MAX_CHARS, check_texts, encode

RESULTS_DIR = Path(__file__).resolve().parent / "assets" / "results"
# ret-int8 is registered and benchmarked, but its numbers (slower and worse than fp32 RET on
# this CPU: decoders/ret.py `compress`, assets/ret/MODEL_CARD.md) do not earn it a default column.
DEFAULT_DECODERS = default_decoders()
MODES = ["Text", "Vector", "Interpolate"]
COLUMNS = ["decoder", "sample", "output", "round-trip cos", "BLEU", "BERTScore F1", "decoder score",
           "latency ms", "params"]


# ----------------------------------------------------------------------------- inputs

def parse_vector(pasted: str | None, file_path: str | None) -> np.ndarray:
    """A 768-d vector from an uploaded .npy/.json/.txt/.csv file or pasted numbers; the first row of [N, 768]."""
    if file_path:
        path = Path(file_path)
        try:
            if path.suffix == ".npy":
                arr = np.load(path, allow_pickle=False)
            elif path.suffix == ".json":
                arr = np.asarray(json.loads(path.read_text()), dtype=np.float32)
            else:
                arr = np.loadtxt(path, delimiter="," if "," in path.read_text()[:10000] else None, dtype=np.float32)
        except (ValueError, OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"could not read a vector from {path.name}: {e}") from None
    elif pasted and pasted.strip():
        try:
            arr = np.asarray([float(t) for t in pasted.replace(",", " ").replace("[", " ").replace("]", " ").split()],
                             dtype=np.float32)
        except ValueError:
            raise ValueError("the pasted vector must be numbers separated by commas or spaces") from None
    else:
        raise ValueError(f"give a {EMBED_DIM}-d vector: upload a .npy/.json/.txt file or paste {EMBED_DIM} numbers")
    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[0]
    return validate_embeddings(arr).numpy()  # [1, 768], unit length


def target_embedding(mode, text, pasted, file_path, text_a, text_b, alpha):
    """(embedding [1, 768], reference text or None, a line saying what was decoded)."""
    if mode == "Text":
        if not (text or "").strip():
            raise ValueError("the text box is empty: type a sentence to decode")
        ref = check_texts([text])[0]
        return encode([ref]), ref, f"all-mpnet-base-v2 embedding of the input text ({len(ref)} characters)"
    if mode == "Vector":
        return parse_vector(pasted, file_path), None, "an external 768-d vector (no reference text: BLEU and BERTScore are not defined)"
    if mode == "Interpolate":
        a, b = check_texts([text_a or "", text_b or ""])
        ea, eb = encode([a, b])
        v = (1 - alpha) * ea + alpha * eb
        if np.linalg.norm(v) < 1e-6:
            raise ValueError("the two embeddings cancel out at this alpha; move the slider")
        v = v / np.linalg.norm(v)
        ref = a if alpha < 0.5 else b
        return v[None].astype(np.float32), ref, f"normalise((1 - {alpha:.2f}) * e(A) + {alpha:.2f} * e(B)); BLEU/BERTScore against the nearer sentence"
    raise ValueError(f"unknown input mode {mode!r}; valid modes: {', '.join(MODES)}")


# ----------------------------------------------------------------------------- decoding

@lru_cache(maxsize=None)
def warm_decoder(name: str):
    """Load a decoder once and run one untimed decode, so the first request's latency is not load time."""
    decoder = get_decoder(name)
    decoder.decode(np.ones((1, EMBED_DIM), dtype=np.float32), Sampling(max_new_tokens=4))
    return decoder


def decode_with(name: str, emb: np.ndarray, sampling: Sampling) -> tuple[list, float, int]:
    """(candidates, latency ms, parameter count) of one decoder."""
    decoder = warm_decoder(name)
    t = time.perf_counter()
    out = decoder.decode(emb, sampling)[0]
    return out, (time.perf_counter() - t) * 1000, decoder.num_parameters


def score_rows(rows: list[dict], emb: np.ndarray, ref: str | None) -> None:
    """Fill round-trip cosine, BLEU and BERTScore in place (metrics from eval/metrics.py)."""
    from eval.metrics import bertscore_f1, roundtrip_cosine, sentence_bleu

    ok = [r for r in rows if r["output"] is not None]
    if not ok:
        return
    hyps = [r["output"] for r in ok]
    cos = roundtrip_cosine(hyps, np.repeat(emb, len(hyps), axis=0))
    bert = bertscore_f1(hyps, [ref] * len(hyps)) if ref else [None] * len(hyps)
    for r, c, b in zip(ok, cos, bert):
        r["round-trip cos"] = round(float(c), 4)
        if ref:
            r["BLEU"] = round(sentence_bleu(r["output"], ref), 2)
            r["BERTScore F1"] = round(float(b), 4)


def latency_figure(rows: list[dict]) -> go.Figure:
    per_decoder = {}
    for r in rows:
        if r["latency ms"] is not None:
            per_decoder.setdefault(r["decoder"], r["latency ms"])
    fig = go.Figure(go.Bar(x=list(per_decoder), y=list(per_decoder.values()), marker_color="#4c78a8",
                           text=[f"{v:.1f}" for v in per_decoder.values()], textposition="outside"))
    fig.update_layout(title="Decode latency of this request (CPU, ms)", yaxis_title="ms", height=320,
                      margin=dict(t=50, b=40, l=50, r=20))
    return fig


def run(mode, text, pasted, file_path, text_a, text_b, alpha, names, temperature, top_k, top_p,
        max_new_tokens, num_samples, seed):
    """The Decode button: returns (results table, latency chart, note)."""
    try:
        sampling = Sampling(temperature=float(temperature), top_k=int(top_k), top_p=float(top_p),
                            max_new_tokens=int(max_new_tokens), num_samples=int(num_samples), seed=int(seed))
        if not names:
            raise ValueError("select at least one decoder")
        unknown = [n for n in names if n not in available_decoders()]
        if unknown:
            raise ValueError(f"unknown decoder(s) {unknown}; valid decoders: {', '.join(available_decoders())}")
        emb, ref, what = target_embedding(mode, text, pasted, file_path, text_a, text_b, float(alpha))
    except ValueError as e:
        raise gr.Error(str(e)) from None
    rows = []
    for name in names:
        try:
            out, ms, params = decode_with(name, emb, sampling)
        except Exception as e:  # noqa: BLE001 - e.g. a checkpoint not built: report it in this row, keep the others
            rows.append({"decoder": name, "sample": None, "output": None, "latency ms": None, "params": None,
                         "error": f"{type(e).__name__}: {e}"})
            continue
        for i, d in enumerate(out):
            rows.append({"decoder": name, "sample": i + 1, "output": d.text, "latency ms": round(ms, 1),
                         "params": params, "decoder score": None if d.score is None else round(d.score, 4)})
    score_rows(rows, emb, ref)
    table = pd.DataFrame([{c: r.get(c) for c in COLUMNS} for r in rows], columns=COLUMNS)
    table["output"] = [r["output"] if r["output"] is not None else f"[failed: {r['error']}]" for r in rows]
    note = f"Decoded: {what}. Sampling: {sampling}."
    return table, latency_figure(rows), note


def interpolation_sweep(text_a, text_b, steps, names, temperature, top_k, top_p, max_new_tokens, seed):
    """Decode the path from A to B at evenly spaced alphas: one row per alpha and decoder."""
    try:
        a, b = check_texts([text_a or "", text_b or ""])
        sampling = Sampling(temperature=float(temperature), top_k=int(top_k), top_p=float(top_p),
                            max_new_tokens=int(max_new_tokens), seed=int(seed))
        if not names:
            raise ValueError("select at least one decoder")
    except ValueError as e:
        raise gr.Error(str(e)) from None
    ea, eb = encode([a, b])
    alphas = np.linspace(0, 1, int(steps))
    path = np.stack([(1 - t) * ea + t * eb for t in alphas])
    path /= np.linalg.norm(path, axis=1, keepdims=True).clip(1e-8)
    table = {"alpha": [round(float(t), 2) for t in alphas]}
    for name in names:
        try:
            table[name] = [o[0].text for o in get_decoder(name).decode(path, sampling)]
        except Exception as e:  # noqa: BLE001 - one broken decoder must not hide the others
            table[name] = [f"[failed: {type(e).__name__}: {e}]"] * len(alphas)
    return pd.DataFrame(table)


def benchmark_view():
    """Summary table and charts from assets/results/*/summary.csv (written by `python -m eval`)."""
    from eval.charts import latency_chart, load_results, params_chart, quality_chart

    try:
        df = load_results(RESULTS_DIR)
        figures = quality_chart(df), params_chart(df), latency_chart(df)
    except (FileNotFoundError, ValueError) as e:
        empty = go.Figure()
        return pd.DataFrame(), empty, empty, empty, f"No benchmark results to show yet: {e}"
    cols = [c for c in ["run", "decoder", "device", "threads", "n", "params", "bleu", "bertscore_f1", "cos",
                        "cos_independent", "exact", "p50_ms", "p95_ms", "p50_batch32_ms"] if c in df.columns]
    note = ("Quality on the held-out test split of the WordNet corpus (greedy). Latency: p50 with p95 "
            "whiskers, one embedding per call. Produced by `python -m eval`; see README.")
    return df[cols].round(4), *figures, note


# ----------------------------------------------------------------------------- layout

with gr.Blocks(title="Embedding-to-text decoder lab") as demo:
    gr.Markdown("# Embedding-to-text decoder lab\nDecode an all-mpnet-base-v2 sentence embedding back into "
                "text with several decoders, side by side, under the same sampling settings.")
    with gr.Tab("Decode"):
        with gr.Row():
            with gr.Column(scale=3):
                mode = gr.Radio(MODES, value="Text", label="Input")
                text = gr.Textbox(label="Text", lines=2, max_length=MAX_CHARS,
                                  placeholder="a small dog barked at the mailman", elem_id="input-text")
                with gr.Group(visible=False) as vector_group:
                    pasted = gr.Textbox(label=f"Paste a {EMBED_DIM}-d vector (comma or space separated)", lines=3)
                    upload = gr.File(label="...or upload .npy / .json / .txt", file_types=[".npy", ".json", ".txt", ".csv"],
                                     type="filepath")
                with gr.Group(visible=False) as interp_group:
                    text_a = gr.Textbox(label="Sentence A", value="the cat sat on the mat")
                    text_b = gr.Textbox(label="Sentence B", value="the stock market fell sharply today")
                    alpha = gr.Slider(0, 1, value=0.5, step=0.05, label="alpha (0 = A, 1 = B)")
                names = gr.CheckboxGroup(available_decoders(), value=DEFAULT_DECODERS, label="Decoders")
            with gr.Column(scale=2):
                temperature = gr.Slider(0, 2, value=0, step=0.05, label="temperature (0 = greedy)")
                top_k = gr.Slider(0, 100, value=0, step=1, label="top-k (0 = off)")
                top_p = gr.Slider(0.05, 1, value=1, step=0.01, label="top-p")
                max_new_tokens = gr.Slider(4, 63, value=32, step=1, label="max new tokens (RET: x3 bytes)")
                num_samples = gr.Slider(1, 8, value=1, step=1, label="samples per decoder")
                seed = gr.Number(value=0, precision=0, label="seed")
                go_btn = gr.Button("Decode", variant="primary", elem_id="decode-btn")
        note = gr.Markdown(elem_id="note")
        table = gr.Dataframe(label="Outputs", wrap=True, elem_id="results")
        latency = gr.Plot(label="Latency")
        with gr.Accordion("Interpolation sweep: decode the path from A to B", open=False):
            steps = gr.Slider(3, 11, value=5, step=1, label="points on the path")
            sweep_btn = gr.Button("Sweep")
            sweep_table = gr.Dataframe(wrap=True)

        mode.change(lambda m: (gr.update(visible=m == "Text"), gr.update(visible=m == "Vector"),
                               gr.update(visible=m == "Interpolate")), mode, [text, vector_group, interp_group])
        inputs = [mode, text, pasted, upload, text_a, text_b, alpha, names, temperature, top_k, top_p,
                  max_new_tokens, num_samples, seed]
        go_btn.click(run, inputs, [table, latency, note])
        text.submit(run, inputs, [table, latency, note])
        sweep_btn.click(interpolation_sweep, [text_a, text_b, steps, names, temperature, top_k, top_p,
                                              max_new_tokens, seed], sweep_table)
    with gr.Tab("Benchmark"):
        bench_note = gr.Markdown()
        bench_table = gr.Dataframe(wrap=True)
        q_plot, p_plot, l_plot = gr.Plot(), gr.Plot(), gr.Plot()
        refresh = gr.Button("Reload results")
        refresh.click(benchmark_view, None, [bench_table, q_plot, p_plot, l_plot, bench_note])
        demo.load(benchmark_view, None, [bench_table, q_plot, p_plot, l_plot, bench_note])


if __name__ == "__main__":
    # HOST/PORT override; Hugging Face Spaces sets GRADIO_SERVER_NAME=0.0.0.0
    host = os.environ.get("HOST", os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    demo.queue(default_concurrency_limit=2).launch(server_name=host, server_port=int(os.environ.get("PORT", 7860)))

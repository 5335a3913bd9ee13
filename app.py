"""The embedding-to-text decoder lab: decode all-mpnet-base-v2 sentence embeddings back to text
with every registered decoder, side by side; play with vectors; review and rate outputs; read
the benchmark.

    python app.py            # http://127.0.0.1:7860 (HOST / PORT override); loads and warms first

API (named endpoints, keyword arguments; see README "API"): /decode_text, /decode_vector,
/interpolate. Everything else is UI plumbing and hidden from the API.
"""
from __future__ import annotations

import os
import time

STARTED = time.perf_counter()  # before the heavy imports: the start-up time logged below counts them
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no analytics or version-check calls

import atexit  # noqa: E402
import ctypes  # noqa: E402
import html  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
from collections import Counter  # noqa: E402
from dataclasses import replace  # noqa: E402
from functools import lru_cache  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import plotly.graph_objects as go  # noqa: E402
import torch  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402
from gradio.route_utils import FnIndexInferError  # noqa: E402

from decoders import DECODERS, Sampling, available_decoders, check_decoder_names, default_decoders, get_decoder  # noqa: E402
from decoders import inputs  # noqa: E402
from decoders.corpus import SPLITS as CORPUS_SPLITS  # noqa: E402
from decoders.encoder import MPNET, encode  # noqa: E402
from eval import charts, review  # noqa: E402
from eval.metrics import bertscore_f1, roundtrip_cosine, sentence_bleu, words  # noqa: E402


def _no_gpu(fn):
    return fn


try:  # Hugging Face ZeroGPU attaches a GPU only inside functions marked spaces.GPU; elsewhere a no-op
    import spaces

    on_gpu = spaces.GPU
except ImportError:
    on_gpu = _no_gpu

log = logging.getLogger("decoder-lab")
ROOT = Path(__file__).resolve().parent
RESULTS_DIR = ROOT / "assets" / "results"
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
DEFAULT_DECODERS = default_decoders()
EXPORT_DIR = Path(tempfile.mkdtemp(prefix="decoder-lab-"))  # CSV downloads; removed at exit
atexit.register(shutil.rmtree, EXPORT_DIR, True)
SPLITS = tuple(s for s in CORPUS_SPLITS if s != "train")  # review sets from the corpus
API_KEYS = ["decoder", "text", "cos", "bleu", "bertscore", "latency_ms", "params"]


# ----------------------------------------------------------------------------- decoding and scoring

def user_error(where: str, e: Exception) -> gr.Error:
    """A bad input: one log line, and a message for the user (no traceback)."""
    log.info("user error in %s: %s", where, e)
    return gr.Error(str(e), print_exception=False)


def pick_decoders(names) -> list[str]:
    if names is None:
        return list(DEFAULT_DECODERS)
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    names = list(dict.fromkeys(check_decoder_names(names)))  # each decoder once, in the order given
    if not names:
        raise ValueError(f"choose at least one decoder; valid decoders: {', '.join(available_decoders())}")
    return names


def parse_settings(temperature, top_k, top_p, max_new_tokens, num_samples, seed, hybrid_budget_ms=None):
    """(Sampling, the hybrid's time budget in ms or None for its default) from form or API values."""
    sampling = inputs.parse_sampling(temperature, top_k, top_p, max_new_tokens, num_samples, seed)
    budget = None if hybrid_budget_ms is None else inputs.check_number(
        hybrid_budget_ms, "hybrid_budget_ms", *inputs.HYBRID_BUDGET_MS)
    return sampling, budget


def decode_and_score(emb: np.ndarray, names: list[str], sampling: Sampling, refs: list[str | None],
                     budget_ms: float | None = None) -> list[dict]:
    """Every decoder on every row of `emb` [N, 768]; one dict per (decoder, row, sample), scored with
    round-trip cosine, and BLEU and BERTScore where the row has a reference text. `budget_ms` is
    the hybrid's wall-clock budget per embedding (None: its configured default)."""
    results = []
    for name in names:
        try:
            decoder = get_decoder(name, DEVICE)
            if budget_ms is not None and hasattr(decoder, "configured"):  # the hybrid's anytime budget
                decoder = decoder.configured(budget_ms=budget_ms)
            t = time.perf_counter()
            out = decoder.decode(emb, sampling)
            ms = (time.perf_counter() - t) * 1000 / len(emb)
        except Exception as e:  # noqa: BLE001 - a decoder that cannot load or run is shown failed in its card
            log.exception("decoder %s failed", name)
            results.append(dict(decoder=name, row=None, sample=None, text=None, cos=None, bleu=None, bertscore=None,
                                latency_ms=None, params=None, error=f"{type(e).__name__}: {e}"))
            continue
        for row, candidates in enumerate(out):
            for k, d in enumerate(candidates):
                r = dict(decoder=name, row=row, sample=k + 1, text=d.text, cos=None, bleu=None, bertscore=None,
                         latency_ms=round(ms, 2), params=decoder.num_parameters, error=None)
                if d.extra.get("trajectory"):
                    r["trajectory"] = d.extra["trajectory"]
                results.append(r)
    ok = [r for r in results if r["error"] is None]
    if ok:
        cos = roundtrip_cosine([r["text"] for r in ok], emb[[r["row"] for r in ok]], device=DEVICE)
        for r, c in zip(ok, cos):
            r["cos"] = round(float(c), 4)
        refd = [r for r in ok if refs[r["row"]]]
        if refd:
            f1 = bertscore_f1([r["text"] for r in refd], [refs[r["row"]] for r in refd], device=DEVICE)
            for r, f in zip(refd, f1):
                r["bleu"] = round(sentence_bleu(r["text"], refs[r["row"]]), 2)
                r["bertscore"] = round(f, 4)
    return results


decode_and_score = on_gpu(decode_and_score)  # ZeroGPU: a GPU is attached for the duration of each call


def api_rows(results: list[dict], **per_row) -> list[dict]:
    """The API's result list: API_KEYS, plus row/sample (and `error` or `trajectory` when present)."""
    out = []
    for r in results:
        d = {k: r[k] for k in API_KEYS} | {"row": r["row"], "sample": r["sample"]}
        for key, values in per_row.items():
            d[key] = values[r["row"]] if r["row"] is not None else None
        for k in ("error", "trajectory"):
            if r.get(k):
                d[k] = r[k]
        out.append(d)
    return out


# ----------------------------------------------------------------------------- the API

def decode_text(text: str, decoders: list[str] | None = None, temperature: float = 0.0, top_k: int = 0,
                top_p: float = 1.0, max_new_tokens: int = Sampling.max_new_tokens, num_samples: int = 1, seed: int = 0,
                hybrid_budget_ms: float | None = None) -> list[dict]:
    """Embed `text` with all-mpnet-base-v2 and decode the embedding with each decoder.

    Args:
        text: the sentence to embed (at most 2,000 characters).
        decoders: registry names; None for the default decoders.
        temperature: 0 is greedy; up to 2.
        top_k: keep the k most likely tokens (0 = off); up to 200.
        top_p: nucleus mass in [0.01, 1].
        max_new_tokens: 1 to 63 (RET reads it as 3x bytes).
        num_samples: candidates per decoder, 1 to 8.
        seed: 0 to 2**32 - 1; same seed, same samples.
        hybrid_budget_ms: the hybrid's wall-clock budget per embedding, 100 to 10,000 ms (None: 1,500).
    Returns:
        One dict per decoder and sample: decoder, text, cos (round trip), bleu and bertscore
        (against `text`), latency_ms (per embedding), params, row, sample.
    """
    try:
        sampling, budget = parse_settings(temperature, top_k, top_p, max_new_tokens, num_samples, seed,
                                          hybrid_budget_ms)
        text, names = inputs.check_text(text), pick_decoders(decoders)
    except ValueError as e:
        raise user_error("/decode_text", e) from None
    return api_rows(decode_and_score(encode([text], device=DEVICE), names, sampling, [text], budget))


def decode_vector(vector: list[float] | list[list[float]], decoders: list[str] | None = None, temperature: float = 0.0,
                  top_k: int = 0, top_p: float = 1.0, max_new_tokens: int = Sampling.max_new_tokens,
                  num_samples: int = 1, seed: int = 0, hybrid_budget_ms: float | None = None) -> list[dict]:
    """Decode a 768-d all-mpnet-base-v2 vector, or up to 16 of them (one per row).

    Args:
        vector: 768 numbers, or a list of up to 16 such lists; any scale (it is a direction).
        decoders: registry names; None for the default decoders.
        temperature, top_k, top_p, max_new_tokens, num_samples, seed, hybrid_budget_ms: as in /decode_text.
    Returns:
        One dict per decoder, row and sample: decoder, text, cos (round trip), bleu and
        bertscore (None: a vector has no reference text), latency_ms, params, row, sample.
    """
    try:
        sampling, budget = parse_settings(temperature, top_k, top_p, max_new_tokens, num_samples, seed,
                                          hybrid_budget_ms)
        emb, names = inputs.to_rows(vector, "vector"), pick_decoders(decoders)
    except ValueError as e:
        raise user_error("/decode_vector", e) from None
    return api_rows(decode_and_score(emb, names, sampling, [None] * len(emb), budget))


def interpolate(text_a: str, text_b: str, steps: int = 5, decoders: list[str] | None = None, temperature: float = 0.0,
                top_k: int = 0, top_p: float = 1.0, max_new_tokens: int = Sampling.max_new_tokens, num_samples: int = 1,
                seed: int = 0, hybrid_budget_ms: float | None = None) -> list[dict]:
    """Decode evenly spaced points on the great circle (slerp) from embedding(A) to embedding(B).

    Args:
        text_a: sentence A (alpha = 0).
        text_b: sentence B (alpha = 1).
        steps: points on the path, 2 to 11, ends included.
        decoders: registry names; None for the default decoders.
        temperature, top_k, top_p, max_new_tokens, num_samples, seed, hybrid_budget_ms: as in /decode_text.
    Returns:
        One dict per point, decoder and sample: alpha, reference ("A" for alpha <= 0.5, else "B"),
        decoder, text, cos (against the point), bleu and bertscore (against the reference sentence),
        latency_ms, params, row, sample.
    """
    try:
        sampling, budget = parse_settings(temperature, top_k, top_p, max_new_tokens, num_samples, seed,
                                          hybrid_budget_ms)
        a, b = inputs.check_text(text_a, "text_a"), inputs.check_text(text_b, "text_b")
        steps, names = inputs.check_number(steps, "steps", 2, inputs.MAX_STEPS, whole=True), pick_decoders(decoders)
        ea, eb = encode([a, b], device=DEVICE)
        alphas, path = inputs.slerp_path(ea, eb, steps)
    except ValueError as e:
        raise user_error("/interpolate", e) from None
    refs = [a if t <= 0.5 else b for t in alphas]
    return api_rows(decode_and_score(path, names, sampling, refs, budget), alpha=[round(float(t), 4) for t in alphas],
                    reference=["A" if t <= 0.5 else "B" for t in alphas])


# ----------------------------------------------------------------------------- rendering

def human(n) -> str:
    """1934595 -> '1.93M', 756352 -> '756K', 0 -> '0'."""
    if n is None or (isinstance(n, float) and np.isnan(n)):
        return "-"
    n = int(n)
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


def highlight(text: str, ref: str | None) -> str:
    """HTML of `text` with each word that also occurs in `ref` marked (clipped counts, as in BLEU)."""
    if not ref:
        return html.escape(text)
    left = Counter(words(ref))
    out, last = [], 0
    for m in re.finditer(r"\w+", text):
        out.append(html.escape(text[last:m.start()]))
        w = m.group(0)
        if left[w.lower()] > 0:
            left[w.lower()] -= 1
            out.append(f'<mark class="hit">{html.escape(w)}</mark>')
        else:
            out.append(html.escape(w))
        last = m.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


def trajectory_svg(traj: list[dict], width: int = 260, height: int = 80) -> str:
    """A small line chart of cos against step (SVG, no script); steps without a cosine are skipped."""
    traj = [p for p in traj if p.get("cos") is not None]
    if not traj:
        return ""
    steps = [int(p["step"]) for p in traj]
    cos = [float(p["cos"]) for p in traj]
    lo, hi = min(cos), max(cos)
    lo, hi = (lo - 0.01, hi + 0.01) if hi - lo < 0.02 else (lo, hi)
    x0, x1, y0, y1 = 34, width - 8, height - 18, 8

    def sx(s):  # step -> x
        return x0 + (x1 - x0) * (s - steps[0]) / (steps[-1] - steps[0]) if steps[-1] != steps[0] else (x0 + x1) / 2

    def sy(c):  # cos -> y (up is higher)
        return y0 + (y1 - y0) * (c - lo) / (hi - lo)

    pts = " ".join(f"{sx(s):.1f},{sy(c):.1f}" for s, c in zip(steps, cos))
    dots = "".join(f'<circle cx="{sx(s):.1f}" cy="{sy(c):.1f}" r="2.5"><title>step {s}: cos {c:.3f}</title></circle>'
                   for s, c in zip(steps, cos))
    return (f'<svg class="traj" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
            f'aria-label="round-trip cosine against correction step">'
            f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" class="axis"/>'
            f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" class="axis"/>'
            f'<text x="{x0 - 4}" y="{y1 + 4}" text-anchor="end">{hi:.2f}</text>'
            f'<text x="{x0 - 4}" y="{y0}" text-anchor="end">{lo:.2f}</text>'
            f'<text x="{x0}" y="{height - 4}">step {steps[0]}</text>'
            f'<text x="{x1}" y="{height - 4}" text-anchor="end">step {steps[-1]}</text>'
            f'<polyline points="{pts}" fill="none"/>{dots}</svg>')


def trajectory_html(traj: list[dict], ref: str | None) -> str:
    def item(p):
        cos = "-" if p.get("cos") is None else f"{float(p['cos']):.3f}"
        text = highlight(str(p["text"]), ref) if p["text"] else "(empty)"
        return f'<li><span class="num">{cos}</span> {text}</li>'

    items = "".join(item(p) for p in traj)
    return (f'<div class="trajectory"><div class="label">correction steps: cos against step</div>'
            f'{trajectory_svg(traj)}<ol start="{int(traj[0]["step"])}">{items}</ol></div>')


def _scores(r: dict) -> str:
    parts = [f'cos <b>{r["cos"]:.3f}</b>' if r["cos"] is not None else "cos -"]
    if r["bleu"] is not None:
        parts += [f'BLEU <b>{r["bleu"]:.1f}</b>', f'BERTScore <b>{r["bertscore"]:.3f}</b>']
    return " · ".join(parts)


def cards_html(results: list[dict], refs: list[str | None], row_labels: list[str] | None = None) -> str:
    """One card per decoder (wrapping flex): its outputs with the words also in the reference marked,
    scores, latency and parameters; the hybrid's correction trajectory when it returns one."""
    by_decoder: dict[str, list[dict]] = {}
    for r in results:
        by_decoder.setdefault(r["decoder"], []).append(r)
    best = max((r["cos"] for r in results if r["cos"] is not None), default=None)
    cards = []
    for name, rs in by_decoder.items():
        summary = html.escape(DECODERS[name].summary) if name in DECODERS else ""
        if rs[0]["error"]:
            cards.append(f'<div class="card failed" data-decoder="{html.escape(name)}"><h3>{html.escape(name)}</h3>'
                         f'<div class="summary">{summary}</div>'
                         f'<div class="error">failed: {html.escape(rs[0]["error"])}</div></div>')
            continue
        meta = []
        if rs[0]["params"] is not None:
            meta.append(f'{human(rs[0]["params"])} params')
        if rs[0]["latency_ms"] is not None:
            meta.append(f'{rs[0]["latency_ms"]:.1f} ms per embedding ({DEVICE})')
        meta = " · ".join(meta)
        body = []
        for row in sorted({r["row"] for r in rs}):
            if row_labels:
                body.append(f'<div class="rowlabel">{html.escape(row_labels[row])}</div>')
            for r in (r for r in rs if r["row"] == row):
                star = ' <span class="best" title="highest round-trip cos in this request">best cos</span>' \
                    if best is not None and r["cos"] == best else ""
                text = highlight(r["text"], refs[row]) if r["text"] else '<span class="empty">(empty output)</span>'
                body.append(f'<div class="out">{text}</div><div class="scores">{_scores(r)}{star}</div>')
                if r.get("trajectory") and len(r["trajectory"]) > 1:  # step 0 alone is the output itself
                    body.append(trajectory_html(r["trajectory"], refs[row]))
        cards.append(f'<div class="card" data-decoder="{html.escape(name)}"><h3>{html.escape(name)}</h3>'
                     f'<div class="summary">{summary}</div><div class="meta">{meta}</div>{"".join(body)}</div>')
    return f'<div class="cards">{"".join(cards)}</div>'


@lru_cache(maxsize=1)
def benchmark_latency() -> pd.DataFrame:
    """p50 per (decoder, device) from the committed results (empty when there are none)."""
    try:
        return charts.latency_rows(charts.load_results(RESULTS_DIR))
    except (FileNotFoundError, ValueError) as e:
        log.warning("no benchmark latency to compare with: %s", e)
        return pd.DataFrame(columns=["decoder", "device", "p50_ms"])


def latency_figure(results: list[dict]) -> go.Figure:
    """This request's latency per decoder beside the benchmark's p50 (eval.charts.request_latency_chart)."""
    mine = {}
    for r in results:
        if r["latency_ms"] is not None:
            mine.setdefault(r["decoder"], r["latency_ms"])
    return charts.request_latency_chart(mine, benchmark_latency(), DEVICE)


def describe(sampling: Sampling) -> str:
    how = "greedy" if sampling.greedy else (f"temperature {sampling.temperature:g}, top-k {sampling.top_k or 'off'}, "
                                             f"top-p {sampling.top_p:g}, seed {sampling.seed}")
    return f"{how}; up to {sampling.max_new_tokens} tokens; {sampling.num_samples} sample(s) per decoder"


# ----------------------------------------------------------------------------- UI handlers
# Each action is two events: `check_*` validates (a gr.Error there touches no output, so the last
# good results stay on screen), then `show_*` decodes and fills the outputs.

def _ui(where: str, fn, *args):
    try:
        return fn(*args)
    except ValueError as e:
        raise user_error(where, e) from None


def _compare_args(text, names, *sampling):
    return inputs.check_text(text), pick_decoders(names), parse_settings(*sampling)


def check_compare(text, names, *sampling):
    _ui("compare", _compare_args, text, names, *sampling)


def show_compare(text, names, *sampling):
    text, names, (sampling, budget) = _ui("compare", _compare_args, text, names, *sampling)
    results = decode_and_score(encode([text], device=DEVICE), names, sampling, [text], budget)
    note = (f"Decoded the {MPNET} embedding of the text ({len(text)} characters) with {len(names)} decoder(s): "
            f"{describe(sampling)}. Marked words also occur in the text.")
    return cards_html(results, [text]), latency_figure(results), note


def _vector_args(pasted, file_path, names, *sampling):
    if file_path:
        name = Path(file_path).name
        emb, what = inputs.read_vector_file(file_path, name), f"the uploaded file {name}"
    else:
        emb, what = inputs.parse_pasted(pasted), "the pasted vector"
    return emb, what, pick_decoders(names), parse_settings(*sampling)


def check_vector(pasted, file_path, names, *sampling):
    _ui("vector", _vector_args, pasted, file_path, names, *sampling)


def show_vector(pasted, file_path, names, *sampling):
    emb, what, names, (sampling, budget) = _ui("vector", _vector_args, pasted, file_path, names, *sampling)
    results = decode_and_score(emb, names, sampling, [None] * len(emb), budget)
    labels = [f"row {i + 1} of {len(emb)}" for i in range(len(emb))] if len(emb) > 1 else None
    note = (f"Decoded {len(emb)} vector(s) from {what} ({describe(sampling)}). No reference text, so no BLEU or "
            f"BERTScore; cos is the round trip to each vector.")
    return cards_html(results, [None] * len(emb), labels), latency_figure(results), note


def _arithmetic_args(a, b, c, names, *sampling):
    texts = [inputs.check_text(t, n) for t, n in ((a, "A"), (b, "B"), (c, "C"))]
    return texts, pick_decoders(names), parse_settings(*sampling)


def check_arithmetic(a, b, c, names, *sampling):
    _ui("arithmetic", _arithmetic_args, a, b, c, names, *sampling)


def show_arithmetic(a, b, c, names, *sampling):
    texts, names, (sampling, budget) = _ui("arithmetic", _arithmetic_args, a, b, c, names, *sampling)
    ea, eb, ec = encode(texts, device=DEVICE)
    target = _ui("arithmetic", inputs.arithmetic, ea, eb, ec)[None]
    results = decode_and_score(target, names, sampling, [None], budget)
    cos = [float(target[0] @ e) for e in (ea, eb, ec)]
    note = (f"Decoded normalise(e(A) - e(B) + e(C)); it has cos {cos[0]:.3f} with A, {cos[1]:.3f} with B and "
            f"{cos[2]:.3f} with C. {describe(sampling)}.")
    return cards_html(results, [None]), latency_figure(results), note


def _noise_args(text, size, noise_seed, names, *sampling):
    text = inputs.check_text(text)
    inputs.check_number(size, "noise size", 0.0, inputs.MAX_NOISE)
    inputs.check_number(noise_seed, "noise seed", *inputs.SAMPLING_LIMITS["seed"])
    return text, pick_decoders(names), parse_settings(*sampling)


def check_noise(text, size, noise_seed, names, *sampling):
    _ui("noise", _noise_args, text, size, noise_seed, names, *sampling)


def show_noise(text, size, noise_seed, names, *sampling):
    text, names, (sampling, budget) = _ui("noise", _noise_args, text, size, noise_seed, names, *sampling)
    e = encode([text], device=DEVICE)[0]
    noisy, cos = inputs.add_noise(e, size, int(noise_seed))
    results = decode_and_score(noisy[None], names, sampling, [text], budget)
    note = (f"Decoded e(text) + {float(size):g} x a random unit direction (noise seed {int(noise_seed)}), "
            f"normalised: cos {cos:.3f} with the text's embedding. Scores against the text. {describe(sampling)}.")
    return cards_html(results, [text]), latency_figure(results), note


def _sweep_args(a, b, steps, names, *sampling):
    a, b = inputs.check_text(a, "sentence A"), inputs.check_text(b, "sentence B")
    steps = inputs.check_number(steps, "steps", 2, inputs.MAX_STEPS, whole=True)
    return a, b, steps, pick_decoders(names), parse_settings(*sampling)


def check_sweep(a, b, steps, names, *sampling):
    _ui("interpolate", _sweep_args, a, b, steps, names, *sampling)


def show_sweep(a, b, steps, names, *sampling):
    a, b, steps, names, (sampling, budget) = _ui("interpolate", _sweep_args, a, b, steps, names, *sampling)
    ea, eb = encode([a, b], device=DEVICE)
    alphas, path = _ui("interpolate", inputs.slerp_path, ea, eb, steps)
    refs = [a if t <= 0.5 else b for t in alphas]
    results = decode_and_score(path, names, sampling, refs, budget)
    labels = [f"alpha {t:.2f} (cos {float(p @ ea):.2f} to A, {float(p @ eb):.2f} to B)" for t, p in zip(alphas, path)]
    first = [r for r in results if r["sample"] == 1]
    fig = charts.path_chart({n: ([float(alphas[r["row"]]) for r in first if r["decoder"] == n],
                                 [r["cos"] for r in first if r["decoder"] == n]) for n in names})
    note = (f"slerp from e(A) to e(B) in {steps} points; BLEU/BERTScore against A for alpha <= 0.5, B above. "
            f"{describe(sampling)}.")
    return cards_html(results, refs, labels), fig, note


# ----------------------------------------------------------------------------- review mode

def _rating_updates(state: dict, names: list[str], outputs: dict[str, str]):
    """Per decoder (in registry order): the output card, the rating and note pre-filled from the store."""
    previous = review.rated(state["reviewer"], state["set"], state["pos"]) if state["reviewer"] else {}
    ups = []
    for name in available_decoders():
        shown = name in outputs
        rating, note = previous.get(name, (None, ""))
        text = highlight(outputs[name], state["items"][state["pos"]]) if shown and outputs[name] else "(empty output)"
        card = (f'<div class="card" data-decoder="{html.escape(name)}"><h3>{html.escape(name)}</h3>'
                f'<div class="out">{text}</div></div>')
        ups += [gr.update(visible=shown), card if shown else "", gr.update(value=rating), gr.update(value=note)]
    return ups


def _decode_item(state: dict) -> dict[str, str]:
    """decoder -> the text to rate for the current item (one greedy or seeded sample each)."""
    sampling, budget = parse_settings(*state["settings"])
    text = state["items"][state["pos"]]
    results = decode_and_score(encode([text], device=DEVICE), state["names"], sampling, [None], budget)
    return {r["decoder"]: (r["text"] if r["error"] is None else f"[failed: {r['error']}]")
            for r in results if r["sample"] in (1, None)}


def _item_md(state: dict) -> str:
    n = len(state["items"])
    return f"**{state['set']}**, item {state['pos'] + 1} of {n}:\n\n> {html.escape(state['items'][state['pos']])}"


def _review_load_args(reviewer, split, first_n, file_path, names, *sampling):
    reviewer = review.check_name(reviewer, "the reviewer name")
    n = inputs.check_number(first_n, "inputs to review", 1, inputs.MAX_REVIEW_LINES, whole=True)
    if file_path:
        path = Path(file_path)
        if path.stat().st_size > inputs.MAX_UPLOAD_BYTES:
            raise ValueError(f"{path.name} is {path.stat().st_size / 2**20:.1f} MB; the upload limit is "
                             f"{inputs.MAX_UPLOAD_BYTES // 2**20} MB")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{path.name} is not UTF-8 text: one input sentence per line") from None
        items, name = inputs.check_lines(text, path.name), path.name
    else:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        from decoders.corpus import load_split

        items, name = load_split(split)[:n], f"{split}[:{n}]"
    return reviewer, items, name, pick_decoders(names), parse_settings(*sampling)


def check_review_load(*args):
    _ui("review", _review_load_args, *args)


def review_load(reviewer, split, first_n, file_path, names, *sampling):
    reviewer, items, set_name, names, (sampling, budget) = _ui("review", _review_load_args, reviewer, split, first_n,
                                                               file_path, names, *sampling)
    sampling = replace(sampling, num_samples=1)  # one output per decoder to rate
    state = {"reviewer": reviewer, "set": set_name, "items": items, "pos": 0, "names": names,
             "sampling": describe(sampling) + (f"; hybrid budget {budget:g} ms" if budget else ""),
             "settings": [sampling.temperature, sampling.top_k, sampling.top_p, sampling.max_new_tokens, 1,
                          sampling.seed, budget]}
    state["outputs"] = _decode_item(state)
    return [state, _item_md(state), *_rating_updates(state, names, state["outputs"]), review_summary(set_name)]


def _ratings_from(values) -> dict[str, tuple]:
    """(rating, note) per decoder from the flat list of rating and note widgets."""
    out = {}
    for i, name in enumerate(available_decoders()):
        out[name] = (values[2 * i], values[2 * i + 1])
    return out


def check_review_save(state, *values):
    if not state:
        raise user_error("review", ValueError("load a set of inputs first"))
    given = {n: rn for n, rn in _ratings_from(values).items() if n in state["outputs"] and rn[0] is not None}
    if not given:
        raise user_error("review", ValueError("rate at least one output (1 to 5) before saving, or use Skip"))


def review_step(state, move: int, save: bool, *values):
    if not state:
        raise user_error("review", ValueError("load a set of inputs first"))
    if save:
        for name, (rating, note) in _ratings_from(values).items():
            if name in state["outputs"] and rating is not None:
                _ui("review", review.save_rating, state["reviewer"], state["set"], state["pos"],
                    state["items"][state["pos"]], name, state["outputs"][name], int(rating), note or "",
                    state["sampling"])
    done = state["pos"] + move >= len(state["items"])
    pos = min(max(state["pos"] + move, 0), len(state["items"]) - 1)
    if pos != state["pos"]:
        state = {**state, "pos": pos}
        state["outputs"] = _decode_item(state)
    md = _item_md(state)
    if done:
        md = f"All {len(state['items'])} items of **{state['set']}** done; ratings saved. Export below.\n\n" + md
    return [state, md, *_rating_updates(state, state["names"], state["outputs"]), review_summary(state["set"])]


def review_summary(review_set: str | None = None) -> pd.DataFrame:
    return review.summary(review_set=review_set)


def export_path(name: str, keep_s: float = 1800) -> Path:
    """A fresh path in EXPORT_DIR for a download; files older than `keep_s` there are removed first
    (gradio serves its own copy of each returned file, pruned by `delete_cache`)."""
    EXPORT_DIR.mkdir(exist_ok=True)
    now = time.time()
    for old in EXPORT_DIR.iterdir():
        if now - old.stat().st_mtime > keep_s:
            old.unlink(missing_ok=True)
    return Path(tempfile.mkstemp(prefix=f"{name}-", suffix=".csv", dir=EXPORT_DIR)[1])


def review_export(state):
    return str(review.export_csv(export_path(f"ratings-{time.strftime('%Y%m%d-%H%M%S')}")))


# ----------------------------------------------------------------------------- benchmark dashboard

BENCH_HEADERS = {"bleu": "BLEU", "bertscore_f1": "BERTScore", "cos": "cos", "cos_independent": "cos (MiniLM)",
                 "exact": "exact", "p50_ms": "p50 ms", "p95_ms": "p95 ms"}


def benchmark_view(chosen_set: str | None = None):
    """(set chooser, note, quality table, quality, size and latency charts, latency table, sample
    chooser, table CSV, samples CSV) for the committed results in assets/results."""
    try:
        df = charts.load_results(RESULTS_DIR)
    except (FileNotFoundError, ValueError) as e:
        empty = go.Figure()
        return (gr.update(choices=[], value=None), f"No benchmark results to show yet: {e}", pd.DataFrame(), empty,
                empty, empty, pd.DataFrame(), gr.update(choices=[], value=None), None, None)
    table = charts.latest(df)
    found = charts.sets(table)
    chosen = chosen_set if chosen_set in found else (found[0] if found else None)
    rows = table[(table["set"] == chosen) & ~charts.is_encoder(table)]
    lat = charts.latency_rows(df)
    show = charts.summary_table(rows).drop(columns=["p50_ms", "p95_ms", "set"], errors="ignore")
    show["params"] = show["params"].map(human)
    show["n"] = show["n"].map(lambda v: f"{int(v):,}" if pd.notna(v) else "-")
    show["device"] = show["device"].map(charts.short_device)
    show["date"] = show["date"].str[:10]
    show = show.rename(columns=BENCH_HEADERS)
    lat_show = lat[["decoder", "device", "p50_ms", "p95_ms", "run"]].round(2).rename(columns=BENCH_HEADERS)
    lat_show["device"] = lat_show["device"].map(charts.short_device)
    figs = []
    for make, data in ((charts.quality_chart, rows), (charts.params_chart, rows), (charts.latency_chart, lat)):
        try:
            figs.append(make(data))
        except ValueError as e:
            figs.append(go.Figure(layout=dict(title=str(e))))
    ns = sorted({int(v) for v in rows["n"].dropna()})
    note = (f"**{chosen}**: the latest run of each decoder on this set (n = {', '.join(f'{v:,}' for v in ns)} inputs; "
            f"decoders measured on fewer inputs are marked with their n). Greedy decoding; produced by `python -m eval`. "
            "Latency below: from the dedicated latency runs where they exist (more repetitions), else the latest run.")
    smp = charts.samples(RESULTS_DIR, rows)
    firsts = smp[["idx", "input"]].drop_duplicates("idx").itertuples(index=False)
    choices = [(f"{i}: {t[:90]}", int(i)) for i, t in firsts]
    table_csv = export_path(f"benchmark-{chosen}")
    charts.summary_table(pd.concat([rows, lat])).to_csv(table_csv, index=False)
    samples_csv = export_path(f"samples-{chosen}")
    smp.to_csv(samples_csv, index=False)
    return (gr.update(choices=found, value=chosen), note, show, *figs[:2], figs[2], lat_show,
            gr.update(choices=choices, value=choices[0][1] if choices else None), str(table_csv), str(samples_csv))


def benchmark_sample(chosen_set: str | None, idx) -> tuple[str, str]:
    """Every decoder's output and scores for one input of the chosen set, as cards."""
    if idx is None:
        return "", ""
    table = charts.latest(charts.load_results(RESULTS_DIR))
    rows = table[(table["set"] == chosen_set) & ~charts.is_encoder(table)]
    smp = charts.samples(RESULTS_DIR, rows)
    hit = smp[smp["idx"] == int(idx)]
    if hit.empty:
        return f"No sample {idx} in {chosen_set}.", ""
    ref = str(hit["input"].iloc[0])
    results = [dict(decoder=r.decoder, row=0, sample=1, text=str(r.output), cos=float(r.cos), bleu=float(r.bleu),
                    bertscore=float(r.bertscore_f1), latency_ms=None, params=None, error=None)
               for r in hit.itertuples()]
    cards = cards_html(results, [ref])
    return f"Input {int(idx)}: **{html.escape(ref)}** (run: {', '.join(hit['run'].unique())})", cards


# ----------------------------------------------------------------------------- layout

THEME = gr.themes.Default(font=["system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial",
                                "sans-serif"],
                          font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"])
CSS = """
.cards {display: flex; flex-wrap: wrap; gap: 12px; align-items: stretch;}
.card {flex: 1 1 250px; min-width: 0; max-width: 100%; box-sizing: border-box; padding: 12px 14px;
       border: 1px solid var(--border-color-primary); border-radius: 10px; background: var(--block-background-fill);}
.card h3 {margin: 0; font-size: 1.05rem;}
.card .summary, .card .meta, .card .rowlabel, .trajectory .label {color: var(--body-text-color-subdued); font-size: 0.8rem;}
.card .meta {margin-top: 2px;}
.card .rowlabel {margin-top: 10px; font-weight: 600; color: var(--body-text-color);}
.card .out {font-size: 1.05rem; margin: 8px 0 2px; overflow-wrap: anywhere; line-height: 1.45;}
.card .scores {font-size: 0.85rem; font-variant-numeric: tabular-nums;}
.card .best {background: var(--color-accent-soft); border-radius: 4px; padding: 0 4px; font-size: 0.75rem;}
.card .error {color: var(--error-text-color, #b91c1c); overflow-wrap: anywhere; margin-top: 8px;}
.card .empty {color: var(--body-text-color-subdued); font-style: italic;}
mark.hit {background: rgba(34, 160, 90, 0.28); color: inherit; border-radius: 3px; padding: 0 1px;}
.trajectory {margin-top: 8px;}
.trajectory svg {max-width: 100%; height: auto; display: block;}
.trajectory svg polyline {stroke: #4c78a8; stroke-width: 2;}
.trajectory svg circle {fill: #4c78a8;}
.trajectory svg .axis {stroke: var(--border-color-primary);}
.trajectory svg text {font-size: 10px; fill: var(--body-text-color-subdued);}
.trajectory ol {margin: 4px 0 0; padding-left: 1.6em; font-size: 0.85rem;}
.trajectory .num {font-variant-numeric: tabular-nums; color: var(--body-text-color-subdued);}
"""

SAMPLING_HELP = {
    "temperature": "0 = greedy", "top_k": "0 = off", "top_p": "1 = off",
    "max_new_tokens": "RET reads it as 3x bytes", "num_samples": "per decoder", "seed": "same seed, same samples"}

with gr.Blocks(title="Embedding-to-text decoder lab", delete_cache=(600, 1800)) as demo:
    gr.Markdown(f"# Embedding-to-text decoder lab\nDecode an {MPNET} sentence embedding back into text with "
                "several decoders side by side, under the same sampling settings.")
    with gr.Accordion("Decoders and sampling (shared by every tab)", open=False):
        names = gr.CheckboxGroup([(f"{n}: {DECODERS[n].summary}", n) for n in available_decoders()],
                                 value=DEFAULT_DECODERS, label="Decoders", elem_id="decoders")
        with gr.Row():
            lim = inputs.SAMPLING_LIMITS
            temperature = gr.Slider(*lim["temperature"][:2], value=0, step=0.05, label="temperature (0 = greedy)")
            top_k = gr.Slider(*lim["top_k"][:2], value=0, step=1, label="top-k (0 = off)")
            top_p = gr.Slider(*lim["top_p"][:2], value=1, step=0.01, label="top-p (1 = off)")
        with gr.Row():
            max_new_tokens = gr.Slider(*lim["max_new_tokens"][:2], value=Sampling.max_new_tokens, step=1,
                                       label="max new tokens (RET: x3 bytes)")
            num_samples = gr.Slider(*lim["num_samples"][:2], value=1, step=1, label="samples per decoder")
            seed = gr.Number(value=0, label=f"seed (0 to {lim['seed'][1]:,})")
            budget = gr.Slider(*inputs.HYBRID_BUDGET_MS, value=1500, step=100,
                               label="hybrid time budget per embedding, ms (it returns its best text so far)")
    settings = [names, temperature, top_k, top_p, max_new_tokens, num_samples, seed, budget]

    def wire(trigger, check, show, ins, outs, reveal=None):
        """`check` first (a gr.Error there leaves every output as it was), then `show` on success,
        then make `reveal` (a chart hidden until it has something to show) visible."""
        event = trigger(check, ins, None, show_progress="hidden", api_visibility="private").success(
            show, ins, outs, api_visibility="private")
        if reveal is not None:
            event.success(lambda: gr.update(visible=True), None, reveal, api_visibility="private")

    with gr.Tabs(overflow_behavior="wrap"):
        with gr.Tab("Compare", id="compare"):
            text = gr.Textbox(label=f"Sentence (Enter decodes; up to {inputs.MAX_TEXT_CHARS:,} characters)", lines=1,
                              placeholder="a small dog barked at the mailman", elem_id="input-text",
                              submit_btn="Decode")
            note = gr.Markdown(elem_id="note")
            cards = gr.HTML(elem_id="cards")
            latency = gr.Plot(label="Latency", elem_id="latency", visible=False)
            wire(text.submit, check_compare, show_compare, [text, *settings], [cards, latency, note], latency)

        with gr.Tab("Playground", id="playground"):
            gr.Markdown("Build an embedding: bring your own vector, walk between two sentences, do arithmetic, "
                        "or add noise; every decoder decodes it.")
            with gr.Tabs(overflow_behavior="wrap"):
                with gr.Tab("Vector"):
                    with gr.Row():
                        pasted = gr.Textbox(label=f"Paste {inputs.EMBED_DIM} numbers (or one vector per line, up to "
                                            f"{inputs.MAX_ROWS})", lines=3, elem_id="pasted")
                        upload = gr.File(label=f".npy / .json / .txt / .csv, up to {inputs.MAX_UPLOAD_BYTES // 2**20} MB "
                                         f"and {inputs.MAX_ROWS} rows", file_types=list(inputs.VECTOR_SUFFIXES),
                                         type="filepath", elem_id="upload")
                    vec_btn = gr.Button("Decode vector", variant="primary")
                with gr.Tab("Interpolate"):
                    with gr.Row():
                        with gr.Column(scale=1, min_width=260):
                            text_a = gr.Textbox(label="Sentence A", value="the cat sat on the mat")
                            text_b = gr.Textbox(label="Sentence B", value="the stock market fell sharply today")
                            steps = gr.Slider(2, inputs.MAX_STEPS, value=5, step=1, label="points on the path (slerp)")
                            sweep_btn = gr.Button("Decode the path", variant="primary")
                        with gr.Column(scale=2, min_width=300):
                            sweep_plot = gr.Plot(label="cos along the path", visible=False)
                    sweep_note = gr.Markdown()
                    sweep_cards = gr.HTML()
                with gr.Tab("Arithmetic"):
                    with gr.Row():
                        arith_a = gr.Textbox(label="A", value="a king rules the country")
                        arith_b = gr.Textbox(label="minus B", value="a man")
                        arith_c = gr.Textbox(label="plus C", value="a woman")
                    arith_btn = gr.Button("Decode A - B + C", variant="primary")
                with gr.Tab("Noise"):
                    with gr.Row():
                        noise_text = gr.Textbox(label="Sentence", value="the river flooded the valley after the storm")
                        noise_size = gr.Slider(0, inputs.MAX_NOISE, value=0.5, step=0.05,
                                               label="noise size (1 = as long as the embedding)")
                        noise_seed = gr.Number(value=0, label="noise seed")
                    noise_btn = gr.Button("Decode the noisy embedding", variant="primary")
            play_note = gr.Markdown()
            play_cards = gr.HTML(elem_id="play-cards")
            play_latency = gr.Plot(label="Latency", visible=False)
            play_out = [play_cards, play_latency, play_note]
            wire(vec_btn.click, check_vector, show_vector, [pasted, upload, *settings], play_out, play_latency)
            wire(sweep_btn.click, check_sweep, show_sweep, [text_a, text_b, steps, *settings],
                 [sweep_cards, sweep_plot, sweep_note], sweep_plot)
            wire(arith_btn.click, check_arithmetic, show_arithmetic, [arith_a, arith_b, arith_c, *settings], play_out,
                 play_latency)
            wire(noise_btn.click, check_noise, show_noise, [noise_text, noise_size, noise_seed, *settings], play_out,
                 play_latency)

        with gr.Tab("Review", id="review"):
            gr.Markdown("Rate each decoder's output for a set of inputs, 1 to 5: " + "; ".join(
                f"{k} = {v}" for k, v in review.SCALE.items()) + f". Ratings are stored in SQLite "
                f"(`{review.ENV}`, default under the user's data directory) with the reviewer's name, and survive restarts.")
            with gr.Row():
                reviewer = gr.Textbox(label="Reviewer name", elem_id="reviewer", max_lines=1)
                split = gr.Dropdown(list(SPLITS), value="test", label="corpus split (WordNet: dev, test; open: open-*)")
                first_n = gr.Number(value=5, label=f"first n inputs (up to {inputs.MAX_REVIEW_LINES})", elem_id="review-n")
                review_file = gr.File(label="...or a text file, one input per line", file_types=[".txt"], type="filepath")
            load_btn = gr.Button("Load and decode the first input", variant="primary", elem_id="review-load")
            state = gr.State(None)
            item_md = gr.Markdown(elem_id="review-item")
            rating_widgets, review_cards = [], []
            with gr.Row(equal_height=False):
                for name in available_decoders():
                    with gr.Column(visible=False, min_width=250) as col:
                        card = gr.HTML()
                        rating = gr.Radio([(f"{k}", k) for k in review.SCALE], label=f"{name}: rating",
                                          elem_id=f"rate-{name}")
                        rnote = gr.Textbox(label="note (optional)", max_lines=1, elem_id=f"note-{name}")
                    review_cards += [col, card, rating, rnote]
                    rating_widgets += [rating, rnote]
            with gr.Row():
                prev_btn = gr.Button("Previous")
                skip_btn = gr.Button("Skip")
                save_btn = gr.Button("Save ratings and next", variant="primary", elem_id="review-save")
            summary_table = gr.Dataframe(label="Summary per decoder (this set)", elem_id="review-summary")
            with gr.Row():
                export_btn = gr.Button("Export all ratings to CSV", elem_id="review-export")
                export_file = gr.File(label="ratings CSV", elem_id="review-csv")
            review_out = [state, item_md, *review_cards, summary_table]
            wire(load_btn.click, check_review_load, review_load, [reviewer, split, first_n, review_file, *settings],
                 review_out)
            save_btn.click(check_review_save, [state, *rating_widgets], None, show_progress="hidden",
                           api_visibility="private").success(
                lambda s, *v: review_step(s, 1, True, *v), [state, *rating_widgets], review_out, api_visibility="private")
            skip_btn.click(lambda s, *v: review_step(s, 1, False, *v), [state, *rating_widgets], review_out,
                           api_visibility="private")
            prev_btn.click(lambda s, *v: review_step(s, -1, False, *v), [state, *rating_widgets], review_out,
                           api_visibility="private")
            export_btn.click(review_export, state, export_file, api_visibility="private")

        with gr.Tab("Benchmark", id="benchmark"):
            bench_set = gr.Dropdown([], label="Test set", elem_id="bench-set")
            bench_note = gr.Markdown()
            bench_table = gr.Dataframe(label="Quality: one row per decoder and device (latest run)", wrap=True,
                                       elem_id="bench-table")
            q_plot = gr.Plot(elem_id="bench-quality")
            p_plot = gr.Plot(elem_id="bench-params")
            l_plot = gr.Plot(elem_id="bench-latency")
            lat_table = gr.Dataframe(label="Latency, ms (the run each number comes from)", elem_id="bench-latency-table")
            gr.Markdown("### Sample browser\nPick an input: every decoder's output and scores on it.")
            sample_pick = gr.Dropdown([], label="Input", filterable=True, elem_id="bench-sample")
            sample_note = gr.Markdown()
            sample_cards = gr.HTML(elem_id="bench-sample-cards")
            with gr.Row():
                table_csv = gr.File(label="This set's table (CSV)")
                samples_csv = gr.File(label="This set's per-input samples (CSV)")
            bench_out = [bench_set, bench_note, bench_table, q_plot, p_plot, l_plot, lat_table, sample_pick,
                         table_csv, samples_csv]
            bench_set.input(benchmark_view, bench_set, bench_out, api_visibility="private")
            sample_pick.change(benchmark_sample, [bench_set, sample_pick], [sample_note, sample_cards],
                               api_visibility="private")
            demo.load(benchmark_view, None, bench_out, api_visibility="private")

    gr.api(decode_text, api_name="decode_text")
    gr.api(decode_vector, api_name="decode_vector")
    gr.api(interpolate, api_name="interpolate")


def warm_up(names: list[str] = DEFAULT_DECODERS) -> None:
    """Load the encoder, the metrics' models and every default decoder, and run one full request,
    so that the first click is as fast as the second."""
    t0 = time.perf_counter()
    log.info("loading encoder %s on %s", MPNET, DEVICE)
    emb = encode(["the cat sat on the mat"], device=DEVICE)
    for name in names:
        t = time.perf_counter()
        log.info("loading decoder %s", name)
        get_decoder(name, DEVICE)
        log.info("loaded %s in %.1f s", name, time.perf_counter() - t)
    if on_gpu is not _no_gpu:  # ZeroGPU: no GPU outside a request, so no warm-up request at start
        log.info("ZeroGPU: decoders loaded; the GPU is attached per request; ready after %.1f s", time.perf_counter() - t0)
        return
    t = time.perf_counter()
    decode_and_score(emb, names, Sampling(), ["the cat sat on the mat"])  # also loads BERTScore's model
    log.info("warm-up request in %.1f s; ready after %.1f s", time.perf_counter() - t, time.perf_counter() - t0)


QUEUE_SIZE = 64                              # requests waiting (QUEUE_SIZE overrides); one more: 503 "busy, try again"
CONCURRENCY = 2                              # requests decoded at once (the CPU Space has 2 cores)
# gradio keeps a copy of every component's config per session, and every API call without a
# session is a new one: at gradio's default capacity (10,000 sessions) RSS climbed ~0.45 MB per
# request under load (python -m eval.load), for good. Sessions past this many are dropped, oldest
# first (a page idle that long loses its review state and is reloaded).
SESSIONS = 64                               # SESSIONS overrides
MAX_BODY_BYTES = inputs.MAX_UPLOAD_BYTES + 2**20  # any request body (an upload plus its form); over it: 413


def fixed_malloc_thresholds(nbytes: int = 128 * 1024) -> bool:
    """glibc: serve blocks over `nbytes` with mmap and trim the heap past `nbytes`, both fixed.

    By default glibc raises its mmap threshold each time a large block is freed, so later large
    blocks (encoder and decoder activations) come from the heap, where freed space stays in RSS.
    Measured with `python -m eval.load --clients 32 --requests 10 --decoders phrase-bank,generative`
    (2 cores, weights resident: `decoders.encoder.resident`): RSS after warm-up +6.2% with glibc's
    defaults (anonymous memory +90 MB), +1.9% with fixed thresholds (the same as
    MALLOC_MMAP_THRESHOLD_=131072 MALLOC_TRIM_THRESHOLD_=131072; MALLOC_ARENA_MAX=2 changed nothing).
    False where the C library is not glibc (nothing changed).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3   # mallopt's parameter numbers (malloc.h)
    return bool(libc.mallopt(M_MMAP_THRESHOLD, nbytes)) and bool(libc.mallopt(M_TRIM_THRESHOLD, nbytes))


def busy(request, exc):
    """503 from gradio's queue: when it is full, say so in words a user acts on, with Retry-After."""
    detail = str(exc.detail)
    if detail.startswith("Queue is full"):
        log.info("busy: refused a request (%s)", detail)
        detail = f"The app is busy, try again in a minute ({detail})"
    return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "60"})


def unknown_endpoint(request, exc):
    """A raw call to an API name that does not exist: 404 naming the ones that do (gradio answers 500)."""
    log.info("user error: %s", exc)
    return JSONResponse({"detail": f"{exc}; the API's endpoints are /decode_text, /decode_vector and /interpolate"},
                        status_code=404)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.info("fixed malloc thresholds: %s", fixed_malloc_thresholds())
    warm_up()
    # HOST/PORT override; Hugging Face Spaces sets GRADIO_SERVER_NAME=0.0.0.0
    host = os.environ.get("HOST", os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    demo.queue(max_size=int(os.environ.get("QUEUE_SIZE", QUEUE_SIZE)), default_concurrency_limit=CONCURRENCY).launch(
        server_name=host, server_port=int(os.environ.get("PORT", 7860)), max_file_size=inputs.MAX_UPLOAD_BYTES,
        state_session_capacity=int(os.environ.get("SESSIONS", SESSIONS)),
        show_error=True,  # a malformed raw API call gets gradio's message, not null
        app_kwargs={"max_body_size": MAX_BODY_BYTES, "exception_handlers": {FnIndexInferError: unknown_endpoint, 503: busy}},
        theme=THEME, css=CSS, prevent_thread_lock=True)
    log.info("page ready %.1f s after start (imports, models, warm-up request)", time.perf_counter() - STARTED)
    demo.block_thread()

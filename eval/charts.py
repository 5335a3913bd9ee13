"""Plotly figures from the benchmark's summary.csv files (one or several runs, e.g. CPU and GPU).

    df = load_results(["assets/results/cpu", "assets/results/cuda"])   # or load_results("assets/results")
    quality_chart(df); params_chart(df); latency_chart(df)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

ENCODER_PREFIX = "encoder ("
BATCH = 32  # the batch size of the batched latency columns
# (column, label, scale to 0-1, std column)
QUALITY = [("bleu", "BLEU / 100", 0.01, None),
           ("bertscore_f1", "BERTScore F1", 1.0, "bertscore_f1_std"),
           ("cos", "cos (all-mpnet-base-v2, round trip)", 1.0, "cos_std"),
           ("cos_independent", "cos (all-MiniLM-L6-v2, independent)", 1.0, "cos_independent_std")]
REQUIRED = {"decoder", "device", "params", "bleu", "bertscore_f1", "cos", "cos_independent", "p50_ms", "p95_ms"}


def _summary_files(path: Path) -> list[Path]:
    if (path / "summary.csv").is_file():
        return [path / "summary.csv"]
    found = sorted(path.glob("*/summary.csv"))
    if not found:
        raise FileNotFoundError(f"no summary.csv in {path} or its subfolders; run `python -m eval --out {path}`")
    return found


def load_results(dir_or_dirs) -> pd.DataFrame:
    """Concatenate the summary.csv of one or several run folders; a folder without one is searched
    one level down (assets/results -> assets/results/cpu, assets/results/cuda). Adds a `run` column."""
    dirs = [dir_or_dirs] if isinstance(dir_or_dirs, (str, Path)) else list(dir_or_dirs)
    if not dirs:
        raise ValueError("no result folders given")
    frames = []
    for d in dirs:
        for f in _summary_files(Path(d)):
            df = pd.read_csv(f)
            missing = REQUIRED - set(df.columns)
            if missing:
                raise ValueError(f"{f} lacks column(s) {sorted(missing)}")
            frames.append(df.assign(run=str(f.parent)))
    return pd.concat(frames, ignore_index=True)


def is_encoder(df: pd.DataFrame) -> pd.Series:
    return df["decoder"].astype(str).str.startswith(ENCODER_PREFIX)


def _quality_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Decoder rows that carry quality numbers (drops the encoder and latency-only runs)."""
    cols = [c for c, *_ in QUALITY]
    return df[~is_encoder(df) & df[cols].notna().any(axis=1)]


def _labels(df: pd.DataFrame) -> pd.Series:
    """Decoder names, with the device added where one decoder appears in several runs."""
    dup = df["decoder"].duplicated(keep=False)
    return df["decoder"].where(~dup, df["decoder"] + " (" + df["device"].astype(str) + ")")


def quality_chart(df: pd.DataFrame) -> go.Figure:
    """Grouped bars per decoder on one 0-1 axis: BLEU/100, BERTScore F1 and the two cosines (std as
    whiskers). Runs without quality numbers (latency only) are left out."""
    q = _quality_rows(df).reset_index(drop=True)
    if q.empty:
        raise ValueError("no quality numbers in these results (latency-only runs?)")
    x = _labels(q)
    fig = go.Figure()
    for col, label, scale, std in QUALITY:
        err = None
        if std is not None and std in q.columns:
            err = dict(type="data", array=q[std].to_numpy(dtype=float), visible=True, thickness=1)
        fig.add_bar(x=x, y=q[col].to_numpy(dtype=float) * scale, name=label, error_y=err,
                    hovertemplate="%{x}<br>" + label + ": %{y:.3f}<extra></extra>")
    fig.update_layout(barmode="group", title="Quality against the embedded sentence (whiskers: 1 std over inputs)",
                      yaxis=dict(title="score (0-1)", range=[0, 1.05]), xaxis_title="decoder",
                      legend=dict(orientation="h", y=-0.2))
    return fig


def params_chart(df: pd.DataFrame) -> go.Figure:
    """Quality against trainable parameters on a log axis, one point per decoder (its first run when
    several runs hold it). A decoder with 0 parameters (retrieval) is drawn at x = 1 and labelled so."""
    q = _quality_rows(df).drop_duplicates("decoder").reset_index(drop=True)
    if q.empty:
        raise ValueError("no quality numbers in these results (latency-only runs?)")
    params = q["params"].to_numpy(dtype=float)
    x = np.maximum(params, 1.0)
    names = [f"{n} (0 params)" if p == 0 else n for n, p in zip(q["decoder"], params)]
    fig = go.Figure()
    for (col, label, scale, _), symbol in zip(QUALITY, ("circle", "diamond", "square", "triangle-up")):
        fig.add_scatter(x=x, y=q[col].to_numpy(dtype=float) * scale, mode="markers+text", name=label,
                        text=names if col == "cos" else None, textposition="top center",
                        marker=dict(symbol=symbol, size=11), customdata=np.stack([params, names], axis=1),
                        hovertemplate="%{customdata[1]}<br>params: %{customdata[0]:,.0f}<br>" + label
                        + ": %{y:.3f}<extra></extra>")
    fig.update_layout(title="Quality against size", xaxis=dict(type="log", title="trainable parameters (log; 0 drawn at 1)"),
                      yaxis=dict(title="score (0-1)", range=[0, 1.05]), legend=dict(orientation="h", y=-0.2))
    return fig


def latency_chart(df: pd.DataFrame) -> go.Figure:
    """p50 latency bars with p95 whiskers, one facet per device; the encoder is hatched and grey."""
    t = df.dropna(subset=["p50_ms", "p95_ms"]).reset_index(drop=True)
    if t.empty:
        raise ValueError("no latency numbers in these results (were they run with --latency-runs 0?)")
    devices = list(dict.fromkeys(t["device"].astype(str)))
    titles = []
    for d in devices:
        threads = t.loc[t["device"].astype(str) == d, "threads"].dropna().unique() if "threads" in t else []
        titles.append(d + (f" ({', '.join(str(int(n)) for n in threads)} threads)" if d == "cpu" and len(threads) else ""))
    fig = make_subplots(rows=1, cols=len(devices), subplot_titles=titles, shared_yaxes=True)
    settings = [("p50_ms", "p95_ms", "1 input", "#1f77b4", "#7f7f7f"),
                (f"p50_batch{BATCH}_ms", f"p95_batch{BATCH}_ms", f"batch of {BATCH}", "#ff7f0e", "#c7c7c7")]
    for c, d in enumerate(devices, start=1):
        sub = t[t["device"].astype(str) == d]
        enc = is_encoder(sub)
        for p50, p95, label, colour, enc_colour in settings:
            if p50 not in sub.columns or sub[p50].isna().all():
                continue
            for part, name, style in ((sub[~enc], label, dict(color=colour)),
                                      (sub[enc], f"encoder, {label}", dict(color=enc_colour, pattern_shape="/"))):
                if part.empty:
                    continue
                y, hi = part[p50].to_numpy(dtype=float), part[p95].to_numpy(dtype=float)
                fig.add_bar(x=part["decoder"], y=y, name=name, legendgroup=name, showlegend=c == 1,
                            offsetgroup=label, marker=style, customdata=hi,
                            error_y=dict(type="data", symmetric=False, array=hi - y, arrayminus=np.zeros_like(y)),
                            hovertemplate="%{x}, " + label + "<br>p50 %{y:.2f} ms<br>p95 %{customdata:.2f} ms<extra></extra>",
                            row=1, col=c)
    fig.update_yaxes(type="log")
    fig.update_yaxes(title_text="ms (log; bar p50, whisker p95)", row=1, col=1)
    fig.update_layout(barmode="group", title="Latency per decode() call; the all-mpnet-base-v2 encoder (hatched) is timed apart",
                      legend=dict(orientation="h", y=-0.2))
    return fig

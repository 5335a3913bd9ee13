"""The benchmark's results as tables and Plotly figures (the app's Benchmark tab).

    df = load_results("assets/results")        # every run folder's summary.csv, one row per decoder per run
    table = latest(df)                          # one row per decoder, test set and device: the latest run
    quality_chart(table[table.set == "test"]); params_chart(...); latency_chart(latency_rows(df))
    samples(Path("assets/results"), table[table.set == "test"])   # per-input outputs of those runs

A run folder holds summary.csv (and samples.csv, env.json) written by `python -m eval`, or a
summary.csv alone from `python -m eval.latency_only`. Each row gets `run` (the folder's name,
never a full path), `date` (env.json's date_utc, empty when the run has no env.json), `set`
(the input split or file without its [:N] limit; "latency only" for runs without inputs) and `n`.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

ENCODER_PREFIX = "encoder ("
LATENCY_ONLY = "latency only"
BATCH = 32  # the batch size of the batched latency columns
# (column, label, scale to 0-1, std column)
QUALITY = [("bleu", "BLEU / 100", 0.01, None),
           ("bertscore_f1", "BERTScore F1", 1.0, "bertscore_f1_std"),
           ("cos", "cos (all-mpnet-base-v2, round trip)", 1.0, "cos_std"),
           ("cos_independent", "cos (all-MiniLM-L6-v2, independent)", 1.0, "cos_independent_std")]
REQUIRED = {"decoder", "device", "params", "bleu", "bertscore_f1", "cos", "cos_independent", "p50_ms", "p95_ms"}
TABLE_COLUMNS = ["decoder", "set", "n", "device", "params", "bleu", "bertscore_f1", "cos", "cos_independent", "exact",
                 "p50_ms", "p95_ms", "run", "date"]
FONT = dict(family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", size=13)


def _summary_files(path: Path) -> list[Path]:
    if (path / "summary.csv").is_file():
        return [path / "summary.csv"]
    found = sorted(path.glob("*/summary.csv"))
    if not found:
        raise FileNotFoundError(f"no summary.csv in {path.name} or its subfolders; run `python -m eval --out <folder>`")
    return found


def _run_date(folder: Path) -> str:
    env = folder / "env.json"
    if not env.is_file():
        return ""
    return str(json.loads(env.read_text()).get("date_utc") or "")


def test_set(source) -> str:
    """'test[:100]' -> 'test'; a missing source (a latency-only run) -> 'latency only'."""
    if source is None or (isinstance(source, float) and np.isnan(source)) or not str(source).strip():
        return LATENCY_ONLY
    return re.sub(r"\[[^\]]*\]$", "", str(source).strip())


def load_results(dir_or_dirs) -> pd.DataFrame:
    """Concatenate the summary.csv of one or several run folders; a folder without one is searched
    one level down (assets/results -> assets/results/cpu, ...). Adds run, date and set columns."""
    dirs = [dir_or_dirs] if isinstance(dir_or_dirs, (str, Path)) else list(dir_or_dirs)
    if not dirs:
        raise ValueError("no result folders given")
    frames = []
    for d in dirs:
        for f in _summary_files(Path(d)):
            df = pd.read_csv(f)
            missing = REQUIRED - set(df.columns)
            if missing:
                raise ValueError(f"{f.parent.name}/summary.csv lacks column(s) {sorted(missing)}")
            if "input" not in df.columns:
                df["input"] = None
            if "n" not in df.columns:
                df["n"] = np.nan
            frames.append(df.assign(run=f.parent.name, date=_run_date(f.parent), set=df["input"].map(test_set)))
    return pd.concat(frames, ignore_index=True)


def is_encoder(df: pd.DataFrame) -> pd.Series:
    return df["decoder"].astype(str).str.startswith(ENCODER_PREFIX)


def latest(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (decoder, set, device): the one from the most recent run (env.json date; runs
    without a date count as oldest, ties go to the folder sorted last)."""
    order = df.assign(_date=df["date"].fillna("")).sort_values(["_date", "run"], kind="stable")
    keep = order.drop_duplicates(["decoder", "set", "device"], keep="last").drop(columns="_date")
    return keep.sort_values(["set", "device", "decoder"], key=_decoder_order, kind="stable").reset_index(drop=True)


def _decoder_order(col: pd.Series) -> pd.Series:
    if col.name != "decoder":
        return col
    from decoders import available_decoders

    rank = {n: i for i, n in enumerate(available_decoders())}
    return col.map(lambda n: rank.get(n, len(rank) + (1 if str(n).startswith(ENCODER_PREFIX) else 0)))


def sets(df: pd.DataFrame) -> list[str]:
    """Test sets that carry quality numbers, the WordNet test split first."""
    q = _quality_rows(df)
    found = list(dict.fromkeys(q["set"]))
    return sorted(found, key=lambda s: (s != "test", s))


def latency_rows(df: pd.DataFrame) -> pd.DataFrame:
    """One latency row per (decoder, device): from the latest dedicated latency-only run when there
    is one (more repetitions, nothing else running), else from the latest quality run."""
    t = latest(df.dropna(subset=["p50_ms", "p95_ms"]))
    t = t.assign(_pref=(t["set"] == LATENCY_ONLY).astype(int)).sort_values(["_pref", "date"], kind="stable")
    return t.drop_duplicates(["decoder", "device"], keep="last").drop(columns="_pref").sort_values(
        ["device", "decoder"], key=_decoder_order, kind="stable").reset_index(drop=True)


def _quality_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Decoder rows that carry quality numbers (drops the encoder and latency-only runs)."""
    cols = [c for c, *_ in QUALITY]
    return df[~is_encoder(df) & df[cols].notna().any(axis=1)]


def _labels(df: pd.DataFrame) -> pd.Series:
    """Decoder names, with the device added where one decoder appears in several rows."""
    dup = df["decoder"].duplicated(keep=False)
    return df["decoder"].where(~dup, df["decoder"] + " (" + df["device"].astype(str) + ")")


def _layout(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0, xanchor="left", font=dict(size=15)), font=FONT, height=height,
                      margin=dict(l=60, r=20, t=60, b=40), legend=dict(orientation="h", y=-0.18, yanchor="top"),
                      template="plotly_white")
    fig.update_xaxes(automargin=True)
    fig.update_yaxes(automargin=True)
    return fig


def quality_chart(df: pd.DataFrame) -> go.Figure:
    """Grouped bars per decoder on one 0-1 axis: BLEU/100, BERTScore F1 and the two cosines (std as
    whiskers). Runs without quality numbers (latency only) are left out."""
    q = _quality_rows(df).reset_index(drop=True)
    if q.empty:
        raise ValueError("no quality numbers in these results (latency-only runs?)")
    x = _labels(q)
    if "n" in q.columns and q["n"].notna().all():
        x = x + "<br>n = " + q["n"].astype(int).map("{:,}".format)
    fig = go.Figure()
    for col, label, scale, std in QUALITY:
        err = None
        if std is not None and std in q.columns:
            err = dict(type="data", array=q[std].to_numpy(dtype=float), visible=True, thickness=1)
        fig.add_bar(x=x, y=q[col].to_numpy(dtype=float) * scale, name=label, error_y=err,
                    hovertemplate="%{x}<br>" + label + ": %{y:.3f}<extra></extra>")
    fig.update_layout(barmode="group", yaxis=dict(title="score (0-1)", range=[0, 1.05]))
    return _layout(fig, "Quality (whiskers: 1 std over inputs)")


def params_chart(df: pd.DataFrame) -> go.Figure:
    """Quality against trainable parameters on a log axis, one point per decoder (its first row when
    several rows hold it). A decoder with 0 parameters (retrieval) is drawn at x = 1 and labelled so."""
    q = _quality_rows(df).drop_duplicates("decoder").reset_index(drop=True)
    if q.empty:
        raise ValueError("no quality numbers in these results (latency-only runs?)")
    params = q["params"].to_numpy(dtype=float)
    x = np.maximum(params, 1.0)
    names = [f"{n} (0 params)" if p == 0 else n for n, p in zip(q["decoder"], params)]
    fig = go.Figure()
    for (col, label, scale, _), symbol in zip(QUALITY, ("circle", "diamond", "square", "triangle-up")):
        fig.add_scatter(x=x, y=q[col].to_numpy(dtype=float) * scale, mode="markers+text", name=label,
                        text=names if col == "cos" else None, textposition="middle right",
                        marker=dict(symbol=symbol, size=11), customdata=np.stack([params, names], axis=1),
                        hovertemplate="%{customdata[1]}<br>params: %{customdata[0]:,.0f}<br>" + label
                        + ": %{y:.3f}<extra></extra>")
    fig.update_layout(xaxis=dict(type="log", title="parameters (log; 0 drawn at 1)", dtick=1,
                                 range=[-0.3, np.log10(max(x.max(), 10)) + 1.2]),
                      yaxis=dict(title="score (0-1)", range=[0, 1.05]))
    return _layout(fig, "Quality against size")


def short_device(device: str) -> str:
    """'cuda (NVIDIA H100 80GB HBM3)' -> 'GPU (H100 80GB HBM3)'; 'cpu' -> 'CPU'."""
    m = re.fullmatch(r"cuda \((?:NVIDIA )?(.*)\)", str(device))
    return f"GPU ({m.group(1)})" if m else str(device).upper() if str(device) == "cpu" else str(device)


def latency_chart(df: pd.DataFrame) -> go.Figure:
    """Horizontal p50 latency bars with p95 whiskers on a log axis, one panel per device (stacked,
    each with its own ticks); the encoder is hatched and grey."""
    t = df.dropna(subset=["p50_ms", "p95_ms"]).reset_index(drop=True)
    if t.empty:
        raise ValueError("no latency numbers in these results (were they run with --latency-runs 0?)")
    devices = list(dict.fromkeys(t["device"].astype(str)))
    titles = []
    for d in devices:
        threads = t.loc[t["device"].astype(str) == d, "threads"].dropna().unique() if "threads" in t else []
        titles.append(short_device(d) + (f", {', '.join(str(int(n)) for n in threads)} threads"
                                         if d == "cpu" and len(threads) else ""))
    counts = [int((t["device"].astype(str) == d).sum()) for d in devices]
    fig = make_subplots(rows=len(devices), cols=1, subplot_titles=titles, vertical_spacing=0.12 if len(devices) > 1 else 0,
                        row_heights=counts)
    settings = [("p50_ms", "p95_ms", "1 input", "#1f77b4", "#7f7f7f"),
                (f"p50_batch{BATCH}_ms", f"p95_batch{BATCH}_ms", f"batch of {BATCH}", "#ff7f0e", "#c7c7c7")]
    for r, d in enumerate(devices, start=1):
        sub = t[t["device"].astype(str) == d]
        enc = is_encoder(sub)
        for p50, p95, label, colour, enc_colour in settings:
            if p50 not in sub.columns or sub[p50].isna().all():
                continue
            for part, name, style in ((sub[~enc], label, dict(color=colour)),
                                      (sub[enc], f"encoder, {label}", dict(color=enc_colour, pattern_shape="/"))):
                if part.empty:
                    continue
                x, hi = part[p50].to_numpy(dtype=float), part[p95].to_numpy(dtype=float)
                y = part["decoder"].str.replace(r"^encoder \(.*\)$", "encoder", regex=True)
                fig.add_bar(y=y, x=x, orientation="h", name=name, legendgroup=name, showlegend=r == 1,
                            offsetgroup=label, marker=style, customdata=hi,
                            error_x=dict(type="data", symmetric=False, array=hi - x, arrayminus=np.zeros_like(x)),
                            hovertemplate="%{y}, " + label + "<br>p50 %{x:.2f} ms<br>p95 %{customdata:.2f} ms<extra></extra>",
                            row=r, col=1)
    for r, d in enumerate(devices, start=1):  # decade ticks on a wide range, 1-2-5 ticks on a narrow one
        sub = t[t["device"].astype(str) == d]
        span = np.log10(sub["p95_ms"].max() / max(sub["p50_ms"].min(), 1e-3))
        fig.update_xaxes(type="log", dtick=1 if span > 1.5 else "D2", showticklabels=True, ticks="outside", row=r, col=1)
    fig.update_xaxes(title_text="ms (log): bar p50, whisker p95", row=len(devices), col=1)
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(barmode="group")
    return _layout(fig, "Latency per decode() call",
                   height=140 + 46 * sum(counts) + 60 * len(devices))


def request_latency_chart(latency_ms: dict[str, float], bench: pd.DataFrame, device: str = "cpu") -> go.Figure:
    """One request's latency per decoder (`latency_ms`) beside the benchmark's p50 for each device in
    `bench` (rows of `latency_rows`): horizontal bars on a log axis, so 3 ms and 1 s both read."""
    names = list(latency_ms)
    fig = go.Figure(go.Bar(y=names, x=[latency_ms[n] for n in names], orientation="h",
                           name=f"this request ({short_device(device)})", text=[f"{latency_ms[n]:.1f}" for n in names],
                           textposition="outside", cliponaxis=False, marker_color="#4c78a8"))
    for d, colour in zip(dict.fromkeys(bench["device"]), ("#9ecae9", "#f58518", "#54a24b")):
        b = bench[bench["device"] == d].set_index("decoder")["p50_ms"]
        if any(n in b.index for n in names):
            fig.add_bar(y=names, x=[b.get(n) for n in names], orientation="h", marker_color=colour,
                        name=f"benchmark p50, {short_device(d)}")
    values = [v for trace in fig.data for v in trace.x if v is not None and v > 0]
    lo, hi = (np.log10(min(values)) - 0.3, np.log10(max(values)) + 0.5) if values else (0, 3)
    fig.update_layout(barmode="group", xaxis=dict(type="log", dtick=1, range=[lo, hi], ticks="outside"),
                      yaxis=dict(autorange="reversed"))
    fig = _layout(fig, "Latency per embedding, ms (log scale)", height=110 + 62 * max(len(names), 1))
    return fig.update_layout(margin=dict(t=40, b=50, l=10, r=20), legend=dict(y=-0.2))


def path_chart(series: dict[str, tuple[list[float], list[float]]]) -> go.Figure:
    """Round-trip cosine along an interpolation path: name -> (alphas, cosines), one line each."""
    fig = go.Figure()
    for name, (alphas, cos) in series.items():
        if alphas:
            fig.add_scatter(x=alphas, y=cos, mode="lines+markers", name=name)
    fig.update_layout(xaxis_title="alpha (0 = A, 1 = B)", yaxis_title="cos")
    return _layout(fig, "Round-trip cos to each point of the path", height=340).update_layout(legend=dict(y=-0.3))


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """The dashboard's table: TABLE_COLUMNS (those present), numbers rounded."""
    cols = [c for c in TABLE_COLUMNS if c in df.columns]
    return df[cols].round(4)


def samples(results_dir: Path, rows: pd.DataFrame) -> pd.DataFrame:
    """Per-input outputs and scores of the (decoder, run) pairs in `rows`, from each run's samples.csv;
    runs without one are skipped. Columns: decoder, run, idx, input, output and the scores."""
    frames = []
    for (decoder, run), _ in rows.groupby(["decoder", "run"], sort=False):
        f = Path(results_dir) / run / "samples.csv"
        if not f.is_file():
            continue
        s = pd.read_csv(f, keep_default_na=False, na_values=[""])
        s = s[s["decoder"] == decoder]
        frames.append(s.assign(run=run))
    if not frames:
        return pd.DataFrame(columns=["decoder", "run", "idx", "input", "output"])
    out = pd.concat(frames, ignore_index=True)
    out["output"] = out["output"].fillna("")
    return out

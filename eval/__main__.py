"""Benchmark the registered decoders: quality against the embedded sentence, latency, memory.

    HF_HUB_OFFLINE=1 python -m eval --decoders all --split test              # the full run, CPU
    HF_HUB_OFFLINE=1 python -m eval --decoders all --split test --device cuda
    HF_HUB_OFFLINE=1 python -m eval --decoders phrase-bank,ret --input my.txt --limit 20 --out /tmp/smoke

Each input text is embedded with all-mpnet-base-v2 (here, by this command), every decoder
turns the embedding back into text (batches of --batch-size, one candidate per input), and the
output is scored against the input. Then each decoder is timed; the encoder is timed apart.

Inputs: --split test|dev (WordNet, usage examples first), open-test|open-dev (the nine open
sources) or train, in corpus order with the sources taken in turn (so --limit 500 of open-test
holds 55 or 56 sentences of each source); --kind keeps one sub-source (e.g. --split test --kind gloss,
or --split open-test --source-name brown); or --input FILE (one text per line, blank lines
skipped; assets/eval/everyday.txt is a set outside every source); --limit N keeps the first N. --decoders all measures every registered
decoder, --decoders default the ones the app shows by default; both skip, with the reason on
stderr and in env.json, one that cannot be loaded; a decoder named explicitly that cannot be
loaded stops the run before anything is encoded (exit 1). Bad arguments (unknown
decoder, missing or empty file, bad split) exit 2 with a usage message.

Sampling defaults to greedy (--temperature 0). Batch b of the quality pass decodes with seed
S + b (--seed S), so a run is reproducible for a given batch size; the latency runs use seed S.

Outputs in --out (default assets/results/<device>):

summary.csv, one row per decoder, plus a row `encoder (all-mpnet-base-v2)` with latency only:
  decoder, device, threads, input, n, params  (trainable parameters; 0 for a retrieval decoder)
  bleu, bleu_signature       corpus sacreBLEU (0-100) and its signature
  sent_bleu                  mean sentence BLEU (effective order)
  bertscore_f1(_std)         mean (std) BERTScore F1; backbone in bertscore_backbone
  cos(_std)                  round-trip cosine: all-mpnet-base-v2(output) vs the target embedding
  cos_independent(_std)      all-MiniLM-L6-v2(output) vs all-MiniLM-L6-v2(input): an encoder the
                             decoders were not trained against
  exact, token_f1, length_ratio   fraction exact (case/whitespace-normalised), mean word F1,
                             mean output/input length in words
  distinct_1, distinct_2     unique / all n-grams over all outputs of the decoder (diversity)
  empty_outputs              how many outputs were empty (they are scored, see eval/metrics.py)
  p50_ms, p95_ms             latency of decode() on one embedding, ms (encoder: one sentence)
  p50_batch32_ms, p95_batch32_ms   the same for a batch of 32
  batch32_per_s              throughput at batch 32: 32 / p50_batch32_ms, embeddings (encoder: sentences) per s
  p50_vs_encoder             p50_ms / the encoder's p50_ms in the same run (the encoder row: 1)
  peak_rss_mb                peak process RSS while loading, decoding and timing this decoder
                             (includes Python, torch and the metric models: see env.json baseline_rss_mb)
  peak_cuda_mb               torch.cuda.max_memory_allocated (CUDA runs only)
  load_s, decode_s           seconds to load the decoder and to decode all inputs (encoder row:
                             seconds to embed all inputs)
  temperature, top_k, top_p, max_new_tokens, seed
samples.csv, one row per input and decoder:
  decoder, idx, input, output, decoder_score, bleu (sentence), bertscore_f1, cos,
  cos_independent, exact, token_f1, length_ratio
env.json: command, date, git commit, seed, package versions, CPU model and threads, GPU,
  input source and its sha256, sampling, latency settings, BERTScore backbone,
  decoders measured and skipped (with the reason).
Empty cells mean "not measured" (e.g. the encoder's quality columns, latency with
--latency-runs 0), never a failed metric: a metric that fails stops the run.
"""
from __future__ import annotations

import argparse
import gc
import hashlib
import importlib.metadata
import json
import os
import platform
import random
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import transformers
from tqdm import tqdm

from decoders import Sampling, available_decoders, check_decoder_names, default_decoders, get_decoder
from decoders.corpus import SPLITS, balanced_order, load_rows
from decoders.encoder import MINILM, MPNET, check_texts, encode, load_encoder
from eval import latency as lat
from eval import metrics as m

ROOT = Path(__file__).resolve().parent.parent
ENCODER_ROW = "encoder (all-mpnet-base-v2)"
LATENCY_BATCH = 32
PACKAGES = ("torch", "transformers", "sentence-transformers", "bert-score", "sacrebleu", "numpy",
            "pandas", "plotly", "tqdm", "psutil")
SUMMARY_COLUMNS = [
    "decoder", "device", "threads", "input", "n", "params", "bleu", "sent_bleu", "bertscore_f1",
    "bertscore_f1_std", "cos", "cos_std", "cos_independent", "cos_independent_std", "exact", "token_f1",
    "length_ratio", "distinct_1", "distinct_2", "empty_outputs", "p50_ms", "p95_ms",
    f"p50_batch{LATENCY_BATCH}_ms", f"p95_batch{LATENCY_BATCH}_ms", f"batch{LATENCY_BATCH}_per_s", "p50_vs_encoder",
    "peak_rss_mb", "peak_cuda_mb",
    "load_s", "decode_s", "temperature", "top_k", "top_p", "max_new_tokens", "seed",
    "bertscore_backbone", "bleu_signature",
]
SAMPLE_COLUMNS = ["decoder", "idx", "input", "output", "decoder_score", "bleu", "bertscore_f1", "cos",
                  "cos_independent", "exact", "token_f1", "length_ratio"]


def positive_int(s: str) -> int:
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {s}")
    return v


def non_negative_int(s: str) -> int:
    v = int(s)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {s}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--decoders", default="all", help="'all', 'default' or a comma list of registry names")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--split", choices=SPLITS, default=None, help="corpus split (default: test)")
    src.add_argument("--input", type=Path, default=None, help="a text file, one input text per line")
    p.add_argument("--kind", default=None, help="with --split: keep rows of this kind (WordNet: example or gloss)")
    p.add_argument("--source-name", default=None, help="with --split: keep rows of this source (e.g. brown)")
    p.add_argument("--limit", type=positive_int, default=None, help="keep the first N inputs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.add_argument("--top-k", type=int, default=0, help="0 = off")
    p.add_argument("--top-p", type=float, default=1.0, help="1 = off")
    p.add_argument("--max-new-tokens", type=int, default=Sampling.max_new_tokens)
    p.add_argument("--batch-size", type=positive_int, default=64, help="embeddings per decode() call in the quality pass")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--latency-runs", type=non_negative_int, default=20, help="timed runs per setting (0 = no timing); a setting stops after 60 s once 3 runs are done")
    p.add_argument("--warmup", type=non_negative_int, default=3, help="untimed runs before timing")
    p.add_argument("--bertscore-model", default=None,
                   help="BERTScore backbone: hub name or local path (default: all-MiniLM-L6-v2, offline)")
    p.add_argument("--bertscore-layers", type=positive_int, default=None,
                   help="BERTScore layer (default: 6 for all-MiniLM-L6-v2, bert-score's choice otherwise)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: assets/results/<device>)")
    return p


def read_inputs(args, parser) -> tuple[list[str], str]:
    """The input texts and a short description of where they came from."""
    if args.input is not None:
        path = args.input
        if not path.is_file():
            parser.error(f"--input {path}: no such file")
        texts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        texts = [t for t in texts if t]
        if not texts:
            parser.error(f"--input {path}: the file holds no text (one input per line)")
        source = path.name
    else:
        split = args.split or "test"
        rows = load_rows(split, [args.source_name] if args.source_name else None)
        if args.kind:
            rows = [r for r in rows if r.kind == args.kind]
        # the sources in turn, corpus order within each: a --limit prefix of open-test is stratified
        texts = [rows[i].text for i in balanced_order([r.source for r in rows])]
        source = split + "".join(f"/{v}" for v in (args.source_name, args.kind) if v)
        if not texts:
            parser.error(f"--split {split} holds no rows of source {args.source_name!r} and kind {args.kind!r}")
    if args.limit is not None:
        texts = texts[: args.limit]
        source += f"[:{args.limit}]"
    try:
        check_texts(texts)
    except ValueError as e:
        parser.error(f"bad input: {e}")
    return texts, source


def requested_decoders(spec: str, parser) -> list[str]:
    """'all' (every registered decoder), 'default' (the app's default columns) or a comma list."""
    if spec.strip() == "all":
        return available_decoders()
    if spec.strip() == "default":
        return default_decoders()
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        parser.error("--decoders is empty; give 'all', 'default' or a comma list of: " + ", ".join(available_decoders()))
    try:
        check_decoder_names(names)
    except ValueError as e:
        parser.error(f"{e} (or 'all', 'default')")
    return list(dict.fromkeys(names))


def load(name: str, device: str):
    """Load decoder `name` and read its parameter count (a decoder that cannot report it is not loadable)."""
    t0 = time.perf_counter()
    decoder = get_decoder(name, device)
    params = int(decoder.num_parameters)
    return decoder, params, time.perf_counter() - t0


def release(device: str) -> None:
    get_decoder.cache_clear()
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def check_loadable(names: list[str], device: str) -> None:
    """Exit with the reason, before any encoding or timing, when a decoder named on the command line
    cannot load: a run would otherwise stop there, after minutes spent on the ones before it."""
    for name in names:
        try:
            load(name, device)
        except Exception as e:  # noqa: BLE001 -- reported with its reason
            raise SystemExit(f"error: decoder {name!r} could not be loaded: {type(e).__name__}: {e}") from e
        finally:
            release(device)


def decode_all(decoder, name: str, targets: np.ndarray, sampling_kw: dict, batch_size: int) -> tuple[list[str], list, float]:
    """One greedy/sampled candidate per target row, in batches; returns texts, decoder scores, seconds."""
    texts, scores = [], []
    t0 = time.perf_counter()
    starts = range(0, len(targets), batch_size)
    for b, start in enumerate(tqdm(starts, desc=f"decoding {name}", unit="batch", file=sys.stderr)):
        sampling = Sampling(**{**sampling_kw, "seed": sampling_kw["seed"] + b}, num_samples=1)
        for cands in decoder.decode(targets[start:start + batch_size], sampling):
            texts.append(cands[0].text)
            scores.append(cands[0].score)
    return texts, scores, time.perf_counter() - t0


def score_outputs(name: str, inputs: list[str], outputs: list[str], targets: np.ndarray, scores: list,
                  bert_kw: dict, device: str, batch_size: int):
    """Per-sample rows and the decoder's summary numbers."""
    bleu, signature = m.corpus_bleu(outputs, inputs)
    bs = np.array(m.bertscore_f1(outputs, inputs, **bert_kw, device=device, batch_size=batch_size))
    cos = m.roundtrip_cosine(outputs, targets, device=device, batch_size=batch_size)
    cos_ind = m.independent_cosine(outputs, inputs, device=device, batch_size=batch_size)
    sent_bleu = np.array([m.sentence_bleu(h, r) for h, r in zip(outputs, inputs)])
    exact = np.array([m.exact_match(h, r) for h, r in zip(outputs, inputs)])
    tf1 = np.array([m.token_f1(h, r) for h, r in zip(outputs, inputs)])
    lr = np.array([m.length_ratio(h, r) for h, r in zip(outputs, inputs)])
    rows = [{"decoder": name, "idx": i, "input": inputs[i], "output": outputs[i], "decoder_score": scores[i],
             "bleu": sent_bleu[i], "bertscore_f1": bs[i], "cos": cos[i], "cos_independent": cos_ind[i],
             "exact": bool(exact[i]), "token_f1": tf1[i], "length_ratio": lr[i]} for i in range(len(inputs))]
    summary = {"bleu": bleu, "bleu_signature": signature, "sent_bleu": sent_bleu.mean(),
               "bertscore_f1": bs.mean(), "bertscore_f1_std": bs.std(), "cos": cos.mean(), "cos_std": cos.std(),
               "cos_independent": cos_ind.mean(), "cos_independent_std": cos_ind.std(), "exact": exact.mean(),
               "token_f1": tf1.mean(), "length_ratio": lr.mean(), "distinct_1": m.distinct_n(outputs, 1),
               "distinct_2": m.distinct_n(outputs, 2), "empty_outputs": sum(not o.strip() for o in outputs)}
    return rows, summary


def _git(*cmd) -> str | None:
    try:
        r = subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: str, threads: int) -> dict:
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    # changed or new source files make the commit alone not reproduce the numbers; earlier results do not
    status = _git("status", "--porcelain")
    dirty = None if status is None else [ln for ln in status.splitlines() if "assets/results/" not in ln]
    env = {"python": platform.python_version(), "platform": platform.platform(), "packages": versions,
           "cpu_model": _cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": threads, "device": device,
           "git_commit": _git("rev-parse", "HEAD"), "git_dirty": None if dirty is None else bool(dirty)}
    if device == "cuda":
        env["gpu"] = torch.cuda.get_device_name()
        env["cuda"] = torch.version.cuda
    return env


def setup_process(seed: int, threads: int | None) -> int:
    """The run's global state, set here in the entry point: torch threads, global seeds, no
    progress bars from transformers. Returns the thread count in use."""
    transformers.utils.logging.disable_progress_bar()
    threads = lat.set_threads(threads)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return threads


def measure_encoder(texts: list[str], common: dict, args, device: str) -> tuple[np.ndarray, dict]:
    """Embed the inputs (the decoders' targets) and time the encoder; returns targets and its summary row."""
    lat.reset_peak_memory(device)
    t0 = time.perf_counter()
    encoder_params = sum(p.numel() for p in load_encoder(MPNET, device).parameters())
    encoder_load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    targets = encode(texts, device=device)
    encode_s = time.perf_counter() - t0
    row = {**common, "decoder": ENCODER_ROW, "params": encoder_params,
           "temperature": None, "top_k": None, "top_p": None, "max_new_tokens": None, "seed": None,
           "bertscore_backbone": None, "load_s": encoder_load_s, "decode_s": encode_s}
    if args.latency_runs:
        print(f"timing {ENCODER_ROW}", file=sys.stderr)
        row.update(lat.encoder_latency(texts, args.latency_runs, args.warmup, device, LATENCY_BATCH))
    row.update(lat.peak_memory(device))
    return targets, row


def measure_decoder(name: str, decoder, params: int, load_s: float, texts: list[str], targets: np.ndarray,
                    common: dict, args, device: str) -> tuple[dict, list[dict]]:
    """Decode every target, time the decoder, score its outputs: its summary row and sample rows."""
    sampling_kw = {k: common[k] for k in ("temperature", "top_k", "top_p", "max_new_tokens", "seed")}
    outputs, dec_scores, decode_s = decode_all(decoder, name, targets, sampling_kw, args.batch_size)
    row = {**common, "decoder": name, "params": params, "load_s": load_s, "decode_s": decode_s}
    if args.latency_runs:
        print(f"timing {name}", file=sys.stderr)
        row.update(lat.decoder_latency(decoder, targets, Sampling(**sampling_kw), args.latency_runs, args.warmup,
                                       device, LATENCY_BATCH))
    row.update(lat.peak_memory(device))
    bert_kw = {"model_type": args.bertscore_model, "num_layers": args.bertscore_layers}
    rows, quality = score_outputs(name, texts, outputs, targets, dec_scores, bert_kw, device, args.batch_size)
    row.update(quality)
    return row, rows


def measure_decoders(names: list[str], explicit: bool, texts: list[str], targets: np.ndarray, common: dict,
                     args, device: str) -> tuple[list[dict], list[dict], dict]:
    """Summary rows, sample rows and {name: reason} of the decoders that could not be loaded."""
    summary, samples, skipped = [], [], {}
    for name in names:
        release(device)
        lat.reset_peak_memory(device)
        try:
            decoder, params, load_s = load(name, device)
        except Exception as e:  # noqa: BLE001 -- a decoder that cannot load is reported, never scored
            reason = f"{type(e).__name__}: {e}"
            if explicit:
                raise SystemExit(f"error: decoder {name!r} could not be loaded: {reason}") from e
            print(f"skipping decoder {name!r}: it could not be loaded: {reason}", file=sys.stderr)
            skipped[name] = reason.replace(f"{ROOT}/", "")   # env.json is committed: no machine paths
            continue
        row, rows = measure_decoder(name, decoder, params, load_s, texts, targets, common, args, device)
        del decoder
        summary.append(row)
        samples.extend(rows)
    release(device)
    if not summary:
        raise SystemExit(f"error: none of the decoders could be loaded: {json.dumps(skipped, indent=1)}")
    return summary, samples, skipped


def run_record(argv: list[str], args, started: datetime, device: str, threads: int, texts: list[str],
               source: str, sampling_kw: dict, extra: dict) -> dict:
    """env.json: the command, its environment and settings, what was measured."""
    return {
        "command": shlex.join(["python", "-m", "eval", *argv]),
        "argv": argv,
        "date_utc": started.isoformat(timespec="seconds"),
        "seconds": round((datetime.now(timezone.utc) - started).total_seconds(), 1),
        "seed": args.seed,
        **environment(device, threads),
        "hf_hub_offline": os.environ.get("HF_HUB_OFFLINE"),
        "input": {"source": source, "n": len(texts),
                  "sha256": hashlib.sha256("\n".join(texts).encode()).hexdigest()},
        "sampling": {**sampling_kw, "num_samples": 1, "quality_pass_seed": "seed + batch index"},
        "batch_size": args.batch_size,
        "latency": {"runs": args.latency_runs, "warmup": args.warmup, "batch": LATENCY_BATCH,
                    "peak_rss": "VmHWM reset per decoder" if lat.rss_peak_is_reset() else "process lifetime peak"},
        **extra,
    }


def parse(argv: list[str]):
    """Arguments, checked: exits 2 with a usage message on a bad one. Returns (args, device, names, texts,
    source, sampling_kw)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        device = lat.resolve_device(args.device)
    except ValueError as e:
        parser.error(str(e))
    names = requested_decoders(args.decoders, parser)
    texts, source = read_inputs(args, parser)
    sampling_kw = {"temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p,
                   "max_new_tokens": args.max_new_tokens, "seed": args.seed}
    try:
        Sampling(**sampling_kw)
    except ValueError as e:
        parser.error(str(e))
    return args, device, names, texts, source, sampling_kw


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args, device, names, texts, source, sampling_kw = parse(argv)
    bert_kw = {"model_type": args.bertscore_model, "num_layers": args.bertscore_layers}
    backbone = m.bertscore_backbone(**bert_kw)
    out = args.out or ROOT / "assets" / "results" / device
    threads = setup_process(args.seed, args.threads)
    started = datetime.now(timezone.utc)

    common = {"device": device, "threads": threads, "input": source, "n": len(texts), **sampling_kw,
              "bertscore_backbone": backbone}
    explicit = args.decoders.strip() not in ("all", "default")   # named decoders must all load
    if explicit:
        check_loadable(names, device)
    targets, encoder_row = measure_encoder(texts, common, args, device)
    # load the metric models now, so that every decoder's peak RSS includes the same baseline
    m.bertscore_f1(["warm up"], ["warm up"], **bert_kw, device=device)
    encode(["warm up"], MINILM, device=device)
    baseline_rss = lat.rss_mb()
    rows, samples, skipped = measure_decoders(names, explicit, texts, targets, common, args, device)

    if args.latency_runs:
        for row in (encoder_row, *rows):
            row["p50_vs_encoder"] = row["p50_ms"] / encoder_row["p50_ms"]
    out.mkdir(parents=True, exist_ok=True)
    summary_df = pd.DataFrame([encoder_row, *rows]).reindex(columns=SUMMARY_COLUMNS)
    summary_df.to_csv(out / "summary.csv", index=False, float_format="%.6g")
    pd.DataFrame(samples, columns=SAMPLE_COLUMNS).to_csv(out / "samples.csv", index=False, float_format="%.6g")
    env = run_record(argv, args, started, device, threads, texts, source, sampling_kw, {
        "baseline_rss_mb": round(baseline_rss, 1), "input_encode_s": round(encoder_row["decode_s"], 3),
        "bertscore_backbone": backbone, "decoders_requested": names,
        "decoders_measured": [r["decoder"] for r in rows], "decoders_skipped": skipped})
    (out / "env.json").write_text(json.dumps(env, indent=2) + "\n")
    print(summary_df[["decoder", "params", "bleu", "bertscore_f1", "cos", "cos_independent", "exact",
                      "p50_ms", "p95_ms", "p50_vs_encoder", f"batch{LATENCY_BATCH}_per_s"]].to_string(
        index=False, float_format="%.3f"))
    print(f"wrote {out}/summary.csv, samples.csv, env.json")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())

"""Latency-only benchmark from stored embeddings, for a machine without the encoder (e.g. a
lent GPU machine that receives only the repository and a .npy of embeddings).

    python -m eval.latency_only --embeddings data/emb_dev.npy --decoders generative,ret --device cuda --out DIR

Writes DIR/summary.csv with the benchmark's columns; the quality columns stay empty (not
measured here: run `python -m eval` where the encoder is available).
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import torch

from decoders import Sampling, check_decoder_names, get_decoder
from eval.latency import decoder_latency, resolve_device, set_threads

COLUMNS = ["decoder", "device", "threads", "params", "bleu", "bertscore_f1", "cos", "cos_independent", "exact",
           "p50_ms", "p95_ms", "p50_batch32_ms", "p95_batch32_ms", "batch32_per_s", "peak_cuda_mb", "max_new_tokens"]


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m eval.latency_only", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--embeddings", type=Path, required=True, help=".npy of [N, 768] embeddings")
    p.add_argument("--decoders", default="generative,ret")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--max-new-tokens", type=int, default=Sampling.max_new_tokens)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    try:
        names = check_decoder_names(n.strip() for n in a.decoders.split(",") if n.strip())
    except ValueError as e:
        p.error(str(e))
    device = resolve_device(a.device)
    threads = set_threads(a.threads)
    emb = np.load(a.embeddings).astype(np.float32)[:512]
    label = f"cuda ({torch.cuda.get_device_name()})" if device == "cuda" else "cpu"
    rows = []
    for name in names:
        dec = get_decoder(name, device)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        r = decoder_latency(dec, emb, Sampling(max_new_tokens=a.max_new_tokens), a.runs, a.warmup, device)
        rows.append({"decoder": name, "device": label, "threads": threads, "params": dec.num_parameters,
                     **{k: round(v, 3) for k, v in r.items()}, "max_new_tokens": a.max_new_tokens,
                     "peak_cuda_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if device == "cuda" else ""})
        print(rows[-1], flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    with open(a.out / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows({c: r.get(c, "") for c in COLUMNS} for r in rows)


if __name__ == "__main__":
    main()

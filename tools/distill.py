"""Sequence-level knowledge distillation (Kim & Rush 2016): decode every embedded row of a split
with a teacher checkpoint and beam search, and write the outputs for a student to train on.

    python -m tools.distill --teacher assets/generative-l --split train --beam 4 --out data/kd_generative-l.tsv
    python -m tools.distill --teacher assets/generative-l --embeddings gpu/train_pq64.npz --device cuda \
        --batch-size 512 --out gpu/kd_generative-l.tsv                      # on a GPU machine
    python -m training generative --kd data/kd_generative-l.tsv --kd-weight 1.0 ...   # the student

Output: a TSV with a header (training/data.py KD_COLUMNS): row (index in the split), score (the
teacher's length-normalised log-probability of its output), reference (the row's text, the key
the trainer joins on), output (tabs and line breaks replaced by spaces). Resumable: rows already
in the file are skipped, so a later run after more rows were embedded adds only the new ones.
Beside it, FILE.json records the teacher and the search settings; a run with other ones stops.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from decoders import checkpoint
from decoders.corpus import DATA_DIR, SPLITS, load_embedded, load_rows
from decoders.transformer import beam_search
from training.data import KD_COLUMNS, load_train_rows, read_kd_records, select_rows
from training.trainer import MODELS, resolve_device


def clean(text: str) -> str:
    """One TSV field: tabs and line breaks become spaces."""
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def settings(args) -> dict:
    """What the outputs depend on: the teacher's files and the search settings."""
    teacher = Path(args.teacher)
    return {"teacher": str(teacher), "config_sha256": file_sha256(teacher / checkpoint.CONFIG),
            "weights_sha256": file_sha256(teacher / checkpoint.WEIGHTS), "split": args.split, "beam": args.beam,
            "max_new_tokens": args.max_new_tokens, "length_penalty": args.length_penalty,
            "early_stopping": not args.no_early_stopping}


def rows_done(path: Path) -> set[int]:
    return {int(rec[0]) for rec in read_kd_records(path)} if path.exists() else set()


def load_split_rows(args) -> tuple[list[int], list[str], np.ndarray]:
    """(index in the split, text, embedding) of the embedded rows to decode."""
    data_dir = Path(args.data_dir)
    if args.split == "train":
        rows, emb = load_train_rows(args.embeddings, data_dir)
    else:
        rows, emb = load_embedded(args.split, data_dir)
    keep = select_rows(rows, args.data_fraction, args.limit)
    index = {r.text: i for i, r in enumerate(load_rows(args.split))}
    return [index[rows[i].text] for i in keep], [rows[i].text for i in keep], emb[keep]


def distill(args, log=print) -> dict:
    out, meta_path = Path(args.out), Path(str(args.out) + ".json")
    want = settings(args)
    if meta_path.exists():
        have = json.loads(meta_path.read_text())
        if have != want:
            diff = {k: (have.get(k), v) for k, v in want.items() if have.get(k) != v}
            raise ValueError(f"{out} was written with other settings {diff} (file, now); use another --out")
    elif out.exists():
        raise ValueError(f"{out} exists without {meta_path.name}; use another --out")
    kind = checkpoint.read_config(args.teacher)["kind"]
    if kind not in MODELS:
        raise ValueError(f"{args.teacher}: model kind {kind!r} cannot be a teacher; kinds: {', '.join(MODELS)}")
    device = resolve_device(args.device)
    model, tokenizer = checkpoint.load(args.teacher, kind, *MODELS[kind], device=device)
    ids, texts, emb = load_split_rows(args)
    done = rows_done(out)
    todo = [j for j, i in enumerate(ids) if i not in done]
    log(f"distill: {len(ids):,} rows embedded and selected, {len(done):,} already in {out}, {len(todo):,} to decode "
        f"with {args.teacher} ({model.num_parameters():,} parameters) on {device}, beam {args.beam}")
    out.parent.mkdir(parents=True, exist_ok=True)
    meta_path.write_text(json.dumps(want, indent=1) + "\n")
    new = not out.exists()
    cfg = model.cfg
    t0 = time.time()
    with open(out, "a", encoding="utf-8") as f:
        if new:
            f.write("\t".join(KD_COLUMNS) + "\n")
        for b in range(0, len(todo), args.batch_size):
            batch = todo[b:b + args.batch_size]
            e = torch.as_tensor(emb[batch], dtype=torch.float32, device=device)
            seqs, scores = beam_search(model, e, args.beam, cfg.bos_id, cfg.eos_id, args.max_new_tokens,
                                       args.length_penalty, early_stopping=not args.no_early_stopping)
            f.writelines(f"{ids[j]}\t{s:.4f}\t{texts[j]}\t{clean(tokenizer.decode(q))}\n"
                         for j, q, s in zip(batch, seqs, scores))
            f.flush()
            n = b + len(batch)
            if (b // args.batch_size) % args.log_every == 0 or n == len(todo):
                log(f"distill: {n:,}/{len(todo):,} rows, {n / (time.time() - t0):.0f} rows/s")
    return {"out": str(out), "rows": len(done) + len(todo), "new": len(todo), "seconds": round(time.time() - t0, 1)}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.distill", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", type=Path, required=True, help="checkpoint folder (e.g. assets/generative-l)")
    p.add_argument("--split", choices=SPLITS, default="train")
    p.add_argument("--out", type=Path, required=True, help="TSV file (appended to: resumable)")
    p.add_argument("--beam", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=48, help="length cap of the teacher's outputs (tokens)")
    p.add_argument("--length-penalty", type=float, default=1.0, help="score = sum log p / length ** this")
    p.add_argument("--no-early-stopping", action="store_true",
                   help="search on until no live hypothesis can win (slower; default: stop at beam finished ones)")
    p.add_argument("--batch-size", type=int, default=256, help="rows per beam search call")
    p.add_argument("--embeddings", default=None, help="train split only: a PQ pack (.npz) instead of DATA_DIR")
    p.add_argument("--data-dir", default=str(DATA_DIR))
    p.add_argument("--data-fraction", type=float, default=1.0, help="as training's --data-fraction")
    p.add_argument("--limit", type=int, default=None, help="the first N selected rows only")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--log-every", type=int, default=20, help="batches between progress lines")
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    for name in ("beam", "batch_size", "max_new_tokens", "log_every"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.embeddings and args.split != "train":
        p.error("--embeddings (a PQ pack) is for --split train")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        result = distill(args, log=lambda m: print(m, file=sys.stderr, flush=True))
    except (ValueError, FileNotFoundError) as e:
        p.error(str(e))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())

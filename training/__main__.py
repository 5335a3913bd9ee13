"""Train a token decoder, or score, size and prepare for training.

    python -m training generative --out assets/generative --minutes 45          # CPU defaults
    python -m training generative --out assets/generative --resume --minutes 30 # go on later
    python -m training ret --out assets/ret --device cuda --batch-size 1024 --lr 3e-3
    python -m training generative --init assets/generative --out runs/gen-ft --lr 1e-3 --minutes 60  # fine-tune
    python -m training score assets/generative assets/ret [--n 256]             # dev and open-dev metrics
    python -m training params generative --set conditioning=adaln n_prefix=0    # parameter count by part
    python -m training params generative --set conditioning=adaln n_prefix=0 --fit ffn_hidden --target 1934595
    python -m training tokenizer --vocab 4096 --out assets/tokenizers/bpe-4096  # BPE on the train split
    python -m training pack --bytes 64 --out gpu/train_pq64.npz                 # train embeddings for a GPU
    python -m training export runs/generative-l --out assets/generative-l --dtype bfloat16  # weights to ship
    python -m training roundtrip --init assets/generative --out runs/generative-rt --steps 300  # SCST fine-tune

Every training flag is a field of training.config.TrainConfig, saved as OUT/train_args.json.
Dev scores are eval.metrics' (corpus BLEU, exact match, round-trip cosine; empty outputs
scored as they are). A checkpoint is written at every evaluation and at the end. The recipes
for the v2 models (issue 10) are in training/RECIPES.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from .config import KINDS, TrainConfig, add_arguments, from_args, parse_key_values
from .trainer import score, train

SUBCOMMANDS = ("score", "params", "tokenizer", "pack", "export", "roundtrip")


def print_table(rows: list[dict]) -> None:
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(str(r[k]) for k in keys) + " |")


def main_score(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m training score", description="dev metrics of checkpoints")
    p.add_argument("directories", type=Path, nargs="+")
    p.add_argument("--n", type=int, default=256, help="first N sentences of each split")
    p.add_argument("--splits", nargs="+", default=["dev", "open-dev"], help="dev splits to score on")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    print_table(score(a.directories, a.n, tuple(a.splits)))
    return 0


def main_params(argv: list[str]) -> int:
    from .params import fit, parameter_table
    p = argparse.ArgumentParser(prog="python -m training params", description=(
        "parameter count of a model config, by part; with --fit, the value of one integer field that brings "
        "the count closest to --target without going over (for comparisons at equal parameters)"))
    p.add_argument("kind", choices=KINDS)
    p.add_argument("--model-config", type=Path, default=None, help="start from this config.json")
    p.add_argument("--set", dest="model", nargs="*", default=[], metavar="KEY=VALUE", help="model config fields")
    p.add_argument("--fit", default=None, help="integer config field to vary (e.g. ffn_hidden, d_model)")
    p.add_argument("--target", type=int, default=None, help="parameter count to match (with --fit)")
    p.add_argument("--step", type=int, default=8, help="--fit tries multiples of this")
    a = p.parse_args(argv)
    try:
        cfg = TrainConfig(kind=a.kind, out="-", model=parse_key_values(a.model),
                          model_config=str(a.model_config) if a.model_config else None)
        fields = cfg.model_fields()
        if a.fit:
            if a.target is None:
                p.error("--fit needs --target")
            fields = {**fields, a.fit: fit(a.kind, fields, a.fit, a.target, a.step)}
        print(json.dumps(parameter_table(a.kind, fields), indent=1))
    except (ValueError, FileNotFoundError) as e:
        p.error(str(e))
    return 0


def main_tokenizer(argv: list[str]) -> int:
    from decoders.corpus import load_rows
    from decoders.generative import BPETokenizer, train_tokenizer

    from .data import subset_key
    p = argparse.ArgumentParser(prog="python -m training tokenizer",
                                description="train a byte-level BPE (<pad>=0, <bos>=1, <eos>=2) on the train split")
    p.add_argument("--vocab", type=int, required=True, help="vocabulary size, e.g. 2048 or 4096")
    p.add_argument("--out", type=Path, required=True, help="folder for tokenizer.json")
    p.add_argument("--sources", choices=["all", "open"], default="all",
                   help="all: WordNet + open train rows; open: the open sources only")
    p.add_argument("--fraction", type=float, default=1.0, help="a fixed hash-based share of those rows")
    a = p.parse_args(argv)
    if not 256 + 3 <= a.vocab <= 65535:
        p.error(f"--vocab must be in [259, 65535], got {a.vocab}")
    t0 = time.time()
    rows = [r for r in load_rows("train") if a.sources == "all" or r.source != "wordnet"]
    texts = [r.text for r in rows if a.fraction >= 1.0 or subset_key(r.text) < a.fraction]
    tok = BPETokenizer(train_tokenizer(texts, a.vocab))
    a.out.mkdir(parents=True, exist_ok=True)
    tok.save(a.out)
    lengths = [len(ids) for ids in tok.encode(texts[:20000])]
    print(json.dumps({"out": str(a.out / "tokenizer.json"), "vocab": tok.vocab_size, "texts": len(texts),
                      "mean_tokens_first_20000": round(sum(lengths) / len(lengths), 2),
                      "seconds": round(time.time() - t0, 1)}))
    return 0


def main_pack(argv: list[str]) -> int:
    from decoders.corpus import DATA_DIR

    from .data import pack_embeddings
    p = argparse.ArgumentParser(prog="python -m training pack", description=(
        "product-quantise the embedded rows of a split into one small .npz (for a GPU machine that receives "
        "at most 64 MiB); train with --embeddings FILE"))
    p.add_argument("--split", default="train")
    p.add_argument("--bytes", type=int, default=64, help="bytes per vector (a divisor of 768: 32, 48, 64, 96, ...)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--data-dir", type=Path, default=DATA_DIR)
    a = p.parse_args(argv)
    print(json.dumps(pack_embeddings(a.split, a.out, a.bytes, a.data_dir)))
    return 0


def main_export(argv: list[str]) -> int:
    import shutil

    from decoders import checkpoint

    from .trainer import MODELS
    p = argparse.ArgumentParser(prog="python -m training export", description=(
        "copy a checkpoint's config, tokenizer and weights (in --dtype), plus its train_log.jsonl and "
        "train_args.json, without the optimizer state: what is shipped for a large model"))
    p.add_argument("source", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="bfloat16")
    a = p.parse_args(argv)
    kind = checkpoint.read_config(a.source)["kind"]
    model, tok = checkpoint.load(a.source, kind, *MODELS[kind])
    checkpoint.save(a.out, model, tok, kind, dtype=getattr(torch, a.dtype))
    for name in ("train_log.jsonl", "train_args.json"):
        if (a.source / name).exists() and a.source.resolve() != a.out.resolve():
            shutil.copy(a.source / name, a.out / name)
    size = (a.out / checkpoint.WEIGHTS).stat().st_size
    print(json.dumps({"out": str(a.out), "kind": kind, "params": model.num_parameters(), "dtype": a.dtype,
                      "weights_mb": round(size / 2**20, 1)}))
    return 0


def main_roundtrip(argv: list[str]) -> int:
    from .roundtrip import main as roundtrip_main
    return roundtrip_main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in SUBCOMMANDS:
        return {"score": main_score, "params": main_params, "tokenizer": main_tokenizer,
                "pack": main_pack, "export": main_export, "roundtrip": main_roundtrip}[argv[0]](argv[1:])
    p = argparse.ArgumentParser(prog="python -m training", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    try:
        cfg = from_args(p.parse_args(argv))
    except ValueError as e:
        p.error(str(e))
    if cfg.resume and not (Path(cfg.out) / "train_state.pt").exists():
        p.error(f"--resume: no train_state.pt in {cfg.out}")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)  # model initialisation
    record = train(cfg)
    print(json.dumps({k: v for k, v in record.items() if not k.endswith("examples")}))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())

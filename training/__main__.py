"""Train a token decoder, or score saved checkpoints on dev.

    python -m training generative --out assets/generative --minutes 45          # CPU defaults
    python -m training generative --out assets/generative --resume --minutes 30 # go on later
    python -m training ret --out assets/ret --device cuda --batch-size 1024 --lr 3e-3
    python -m training score assets/generative assets/ret [--n 256]             # dev metrics

Every flag is a field of training.config.TrainConfig, saved as OUT/train_args.json. Dev
scores are eval.metrics' (corpus BLEU, exact match, round-trip cosine; empty outputs scored
as they are). A checkpoint is written at every evaluation and at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

from .config import add_arguments, from_args
from .trainer import score, train


def print_table(rows: list[dict]) -> None:
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(str(r[k]) for k in keys) + " |")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["score"]:
        p = argparse.ArgumentParser(prog="python -m training score", description="dev metrics of checkpoints")
        p.add_argument("directories", type=Path, nargs="+")
        p.add_argument("--n", type=int, default=256, help="first N dev sentences")
        p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
        a = p.parse_args(argv[1:])
        torch.set_num_threads(a.threads)
        print_table(score(a.directories, a.n))
        return 0
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
    print(json.dumps({k: v for k, v in record.items() if k != "examples"}))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())

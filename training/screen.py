"""Fit the screen (decoders/screen.py): all-MiniLM-L6-v2 embeddings mapped into all-mpnet-base-v2's space.

    python -m training.screen --out assets/screen                 # 40,000 train rows: about 1 min on 2 threads
    python -m training.screen --out runs/screen-100k --rows 100000

Data: `--rows` sentences of the train split drawn at random (`--seed`), their MiniLM embeddings
(computed here, in bfloat16 where the CPU computes it natively) and their cached mpnet
embeddings (data/emb_train.npy, `python -m decoders.corpus embed --split train`); no other text.
Fit: ridge regression in closed form (float64) of the mpnet embedding on [MiniLM embedding, 1],
penalty `--ridge` on W, none on b. Reported on the first `--eval-n` sentences of dev (WordNet)
and open-dev, taken source by source as eval takes them: the mean cos(ẽ, e) of mapped and true
embeddings, and top-1 retrieval (the share of sentences whose ẽ lies nearer their own e than any
other sentence's of the set). Writes the checkpoint, train_args.json, train_log.jsonl (one
record) and MODEL_CARD.md into OUT.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from decoders import checkpoint
from decoders.encoder import MINILM, default_dtype, encode
from decoders.screen import KIND, Config, NoTokenizer, ScreenMap

from .config import DEV_SPLITS, parse_plain_config
from .data import DATA_DIR, load_dev, load_train_rows
from .trainer import hardware


@dataclass
class ScreenTrainConfig:
    out: str = "assets/screen"
    rows: int = 40_000
    ridge: float = 0.01
    eval_n: int = 1000
    threads: int = 2
    seed: int = 0


def fit_map(m: np.ndarray, e: np.ndarray, ridge: float) -> tuple[np.ndarray, np.ndarray]:
    """(W [text_dim, embed_dim], b [embed_dim]) minimising |m W + b - e|^2 + ridge |W|^2."""
    x = np.hstack([m.astype(np.float64), np.ones((len(m), 1))])
    penalty = ridge * np.eye(x.shape[1])
    penalty[-1, -1] = 0.0   # the bias is not shrunk
    wb = np.linalg.solve(x.T @ x + penalty, x.T @ e.astype(np.float64))
    return wb[:-1], wb[-1]


def screen_scores(est: np.ndarray, e: np.ndarray) -> dict:
    """Mean cos(ẽ_i, e_i) and top-1 retrieval of e_i by ẽ_i among the set."""
    sims = est @ e.T
    return {"cos": round(float(np.mean(np.diag(sims))), 4),
            "top1": round(float(np.mean(np.argmax(sims, axis=1) == np.arange(len(e)))), 4), "n": len(e)}


def embed_texts(texts: list[str]) -> np.ndarray:
    return encode(texts, name=MINILM, strict=False, dtype=default_dtype("cpu"), batch_size=128)


def fit(cfg: ScreenTrainConfig, texts: list[str], emb: np.ndarray, dev: dict[str, tuple[list[str], np.ndarray]],
        embed=embed_texts, quiet: bool = False) -> dict:
    """Fit on (texts, emb) and write the checkpoint, log and card into cfg.out; the log record."""
    t0 = time.perf_counter()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    take = np.sort(rng.choice(len(texts), min(cfg.rows, len(texts)), replace=False))
    m = embed([texts[i] for i in take])
    model = ScreenMap(Config(text_dim=m.shape[1], embed_dim=emb.shape[1]))
    w, b = fit_map(m, np.asarray(emb[take], dtype=np.float32), cfg.ridge)
    with torch.no_grad():
        model.map.weight.copy_(torch.from_numpy(w.T))
        model.map.bias.copy_(torch.from_numpy(b))
    model.eval()
    fit_s = time.perf_counter() - t0
    with torch.no_grad():
        record = {"rows": len(take), "fit_s": round(fit_s, 1), "device": hardware(),
                  **{split: screen_scores(model(torch.from_numpy(embed(t))).numpy(), np.asarray(e, np.float32))
                     for split, (t, e) in dev.items()}}
    (out / "train_args.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    (out / "train_log.jsonl").write_text(json.dumps(record) + "\n")
    checkpoint.save(out, model, NoTokenizer(), KIND, command=f"python -m training.screen --out {cfg.out}")
    write_card(out, cfg, model, len(texts), record)
    if not quiet:
        print(json.dumps(record), flush=True)
    return record


def write_card(out: Path, cfg: ScreenTrainConfig, model: ScreenMap, n_train: int, record: dict) -> None:
    metrics = "\n".join(f"| {s} | {r['n']} | {r['cos']} | {r['top1']} |" for s, r in record.items() if isinstance(r, dict))
    (out / "MODEL_CARD.md").write_text(f"""# Screen

all-MiniLM-L6-v2 embeddings (384-d) mapped linearly into all-mpnet-base-v2's space (768-d),
{model.num_parameters():,} parameters beside MiniLM's own (decoders/screen.py). The hybrid decoder
uses it to choose which of a step's proposals it encodes with mpnet (decoders/hybrid.py,
`screen`); it writes no text and scores nothing that is kept.

- Data: {record['rows']:,} of the {n_train:,} train-split sentences, drawn at random (seed {cfg.seed}),
  with their cached mpnet embeddings (the corpus issue's sources; dev and test never enter).
- Fit: ridge regression in closed form, penalty {cfg.ridge} on W:
  `python -m training.screen {' '.join(f'--{k.replace("_", "-")} {v}' for k, v in asdict(cfg).items())}`
- {record['fit_s']} s (MiniLM embedding included) on {record['device']}; there are no steps, hence no learning curve.

## Metrics (first {cfg.eval_n} sentences of each split, source by source)

cos: mean cos(ẽ, e) of the mapped MiniLM embedding and the true mpnet one. top-1: the share of
sentences whose ẽ lies nearer their own e than any other sentence's of the set.

| split | n | cos | top-1 |
|---|---|---|---|
{metrics}
""")


def main(argv: list[str] | None = None) -> int:
    cfg, data_dir = parse_plain_config(ScreenTrainConfig, argv, "python -m training.screen", __doc__, DATA_DIR)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rows, emb = load_train_rows(data_dir=data_dir)
    dev = {split: load_dev(cfg.eval_n, split, data_dir) for split in DEV_SPLITS}
    fit(cfg, [r.text for r in rows], emb, {s: (t, e.numpy()) for s, (t, e) in dev.items()})
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())

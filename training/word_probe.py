"""Train the word probe (decoders/word_probe.py): p(word in sentence | all-mpnet-base-v2 embedding).

    python -m training.word_probe --out assets/word_probe --epochs 4            # CPU: 11 min on 2 threads (Xeon VM)
    python -m training.word_probe --out runs/word-probe --epochs 1 --vocab 4096 --eval-n 200

Data: the train split's texts and their cached embeddings (data/emb_train.npy, `python -m
decoders.corpus embed --split train`); no other text. The vocabulary is the `--vocab` words
found in the most train sentences (decoders.word_probe.words: lower-cased); a sentence's labels
are its words in that vocabulary. Loss: binary cross-entropy summed over the vocabulary,
AdamW with a one-cycle schedule. Every `--eval-every` steps and at the end it logs, on the first
`--eval-n` sentences of dev (WordNet) and open-dev, taken source by source as eval takes them:
precision / recall / F1 of the words with p > 0.5, and recall@10 (the share of a sentence's
vocabulary words among the probe's 10 likeliest), to OUT/train_log.jsonl. It writes the
checkpoint, train_args.json, train_log.jsonl and MODEL_CARD.md (data, steps, time, hardware,
metrics, learning curve) into OUT.
"""
from __future__ import annotations

import collections
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from decoders import checkpoint
from decoders.encoder import default_dtype
from decoders.word_probe import KIND, Config, WordProbeModel, WordVocab, words

from .config import DEV_SPLITS, parse_plain_config
from .data import DATA_DIR, load_dev, load_train_rows
from .trainer import hardware


@dataclass
class ProbeTrainConfig:
    out: str = "assets/word_probe"
    vocab: int = 12288
    hidden: int = 768
    epochs: float = 4.0
    batch_size: int = 1024
    lr: float = 2e-3
    warmup_frac: float = 0.05
    eval_every: int = 400
    eval_n: int = 1000
    threads: int = 2
    seed: int = 0


def build_vocab(texts: list[str], size: int) -> WordVocab:
    """The `size` words found in the most texts (ties: first seen first)."""
    df = collections.Counter(w for t in texts for w in set(words(t)))
    return WordVocab([w for w, _ in df.most_common(size)])


def label_matrix(texts: list[str], vocab: WordVocab) -> tuple[np.ndarray, np.ndarray]:
    """The texts' word sets as CSR arrays (indptr [N + 1], indices)."""
    ids = [vocab.ids(t) for t in texts]
    indptr = np.zeros(len(ids) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(i) for i in ids])
    return indptr, np.fromiter((j for i in ids for j in i), dtype=np.int64, count=int(indptr[-1]))


def dense_labels(indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray, vocab_size: int) -> torch.Tensor:
    y = torch.zeros(len(rows), vocab_size)
    counts = indptr[rows + 1] - indptr[rows]
    r = np.repeat(np.arange(len(rows)), counts)
    c = np.concatenate([indices[indptr[i]:indptr[i + 1]] for i in rows]) if counts.sum() else np.zeros(0, np.int64)
    y[torch.from_numpy(r), torch.from_numpy(c)] = 1.0
    return y


@torch.no_grad()
def word_scores(model: WordProbeModel, vocab: WordVocab, texts: list[str], emb: torch.Tensor, k: int = 10) -> dict:
    """Mean per-sentence precision / recall / F1 of the words with p > 0.5, and recall@k; sentences
    without a vocabulary word are left out."""
    p = torch.sigmoid(model(emb.float())).numpy()
    prec, rec, at_k = [], [], []
    for t, row in zip(texts, p):
        truth = set(vocab.ids(t))
        if not truth:
            continue
        pred = set(np.flatnonzero(row > 0.5).tolist())
        hit = len(truth & pred)
        prec.append(hit / len(pred) if pred else 0.0)
        rec.append(hit / len(truth))
        at_k.append(len(truth & set(np.argsort(-row)[:k].tolist())) / len(truth))
    P, R = float(np.mean(prec)), float(np.mean(rec))
    return {"precision": round(P, 4), "recall": round(R, 4), "f1": round(2 * P * R / (P + R) if P + R else 0.0, 4),
            f"recall@{k}": round(float(np.mean(at_k)), 4)}


def train(cfg: ProbeTrainConfig, texts: list[str], emb: np.ndarray, dev: dict[str, tuple[list[str], torch.Tensor]],
          quiet: bool = False) -> dict:
    """Train on (texts, emb) and write the checkpoint, log and card into cfg.out; the last log record."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_args.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    t0 = time.perf_counter()
    vocab = build_vocab(texts, cfg.vocab)
    indptr, indices = label_matrix(texts, vocab)
    model = WordProbeModel(Config(vocab_size=vocab.vocab_size, hidden=cfg.hidden, embed_dim=emb.shape[1]))
    df = np.bincount(indices, minlength=vocab.vocab_size) / len(texts)
    with torch.no_grad():   # start at each word's base rate
        model.net[2].bias.copy_(torch.from_numpy(np.log(np.clip(df, 1e-7, None) / np.clip(1 - df, 1e-7, None))))
    steps = max(1, int(cfg.epochs * len(texts) / cfg.batch_size))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps, pct_start=cfg.warmup_frac)
    autocast = default_dtype("cpu") == "bfloat16"   # AMX / AVX512-BF16: ~2x faster matmuls
    rng = np.random.default_rng(cfg.seed)
    order, pos = rng.permutation(len(texts)), 0
    log_path = out / "train_log.jsonl"
    log_path.write_text("")
    losses, record = [], {}
    for step in range(1, steps + 1):
        if pos + cfg.batch_size > len(texts):
            order, pos = rng.permutation(len(texts)), 0
        rows = order[pos:pos + cfg.batch_size]
        pos += cfg.batch_size
        x = torch.from_numpy(np.asarray(emb[rows], dtype=np.float32))
        y = dense_labels(indptr, indices, rows, vocab.vocab_size)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            logits = model(x)
        loss = nn.functional.binary_cross_entropy_with_logits(logits.float(), y, reduction="sum") / len(rows)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % cfg.eval_every == 0 or step == steps:
            model.eval()
            record = {"step": step, "samples_seen": step * cfg.batch_size, "epochs": round(step * cfg.batch_size / len(texts), 3),
                      "train_loss": round(float(np.mean(losses[-cfg.eval_every:])), 4), "lr": sched.get_last_lr()[0],
                      "elapsed_s": round(time.perf_counter() - t0, 1), "device": hardware(),
                      **{split: word_scores(model, vocab, t, e) for split, (t, e) in dev.items()}}
            model.train()
            with log_path.open("a") as f:
                f.write(json.dumps(record) + "\n")
            if not quiet:
                print(json.dumps(record), flush=True)
    model.eval()
    checkpoint.save(out, model, vocab, KIND, dtype=torch.bfloat16,   # ranks words: bfloat16 loses nothing here
                    command=f"python -m training.word_probe --out {cfg.out}")
    write_card(out, cfg, model, len(texts), record)
    return record


def learning_curve(log_path: Path) -> str:
    rows = [json.loads(line) for line in Path(log_path).read_text().splitlines() if line.strip()]
    splits = [k for k in rows[0] if isinstance(rows[0][k], dict)] if rows else []
    head = "| step | epochs | train loss | " + " | ".join(f"{s} F1 | {s} recall@10" for s in splits) + " |"
    lines = [head, "|" + "---|" * (3 + 2 * len(splits))]
    for r in rows:
        lines.append(f"| {r['step']} | {r['epochs']} | {r['train_loss']} | "
                     + " | ".join(f"{r[s]['f1']} | {r[s]['recall@10']}" for s in splits) + " |")
    return "\n".join(lines)


def write_card(out: Path, cfg: ProbeTrainConfig, model: WordProbeModel, n_train: int, last: dict) -> None:
    metrics = "\n".join(f"- {s}: " + ", ".join(f"{k} {v}" for k, v in last[s].items())
                        for s in last if isinstance(last[s], dict))
    (out / "MODEL_CARD.md").write_text(f"""# Word probe

p(word in sentence | all-mpnet-base-v2 embedding) for {model.cfg.vocab_size:,} words:
768 -> {model.cfg.hidden} (GELU) -> {model.cfg.vocab_size:,} logits, {model.num_parameters():,} parameters
(decoders/word_probe.py). The hybrid decoder uses it to choose which words its edits insert,
delete or replace (decoders/hybrid.py); it writes no text itself.

- Data: the {n_train:,} train-split sentences with their cached embeddings (the corpus issue's
  sources; dev and test sentences never enter). Labels: each sentence's set of vocabulary words.
- Training: `python -m training.word_probe {' '.join(f'--{k.replace("_", "-")} {v}' for k, v in asdict(cfg).items())}`
- {last.get('step')} steps of {cfg.batch_size} ({last.get('epochs')} epochs), {last.get('elapsed_s')} s on {last.get('device')}.

## Metrics (first {cfg.eval_n} sentences of each split, source by source; words with p > 0.5, and recall@10)

{metrics}

## Learning curve

{learning_curve(out / 'train_log.jsonl')}
""")


def main(argv: list[str] | None = None) -> int:
    cfg, data_dir = parse_plain_config(ProbeTrainConfig, argv, "python -m training.word_probe", __doc__, DATA_DIR)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rows, emb = load_train_rows(data_dir=data_dir)
    dev = {split: load_dev(cfg.eval_n, split, data_dir) for split in DEV_SPLITS}
    record = train(cfg, [r.text for r in rows], emb, dev)
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())

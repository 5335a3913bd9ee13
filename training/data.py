"""Training data: the corpus rows embedded so far, their selection and weights, teacher outputs
(sequence-level distillation), packed token sequences, batches, noise, and a compact PQ pack of
the train embeddings for a GPU machine that receives little data.

An *example* is (embedding row, target text, weight): every selected train row gives one
example whose target is its own text, weighted `wordnet_weight` for WordNet rows and 1 for
the others; with a distillation file, each row the teacher decoded gives a second example
whose target is the teacher's output, weighted `kd_weight` times the row's weight. A weight
is the number of copies of the example per epoch (a fraction is a per-epoch coin flip).
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from decoders.base import EMBED_DIM
from decoders.corpus import DATA_DIR, Row, _texts_sha256, balanced_order, embedding_paths, load_embedded, load_rows
from decoders.encoder import encode

PACK_KEYS = ("codes", "centroids", "done", "texts_sha256", "mean_cos")
KD_COLUMNS = ["row", "score", "reference", "output"]


# --------------------------------------------------------------------------- train rows

def subset_key(text: str) -> float:
    """A fixed number in [0, 1) per text (salted sha1), so the `data_fraction` subsets are nested:
    the 10% subset is inside the 30% one, whatever rows are embedded."""
    return int(hashlib.sha1(("subset\0" + text).encode()).hexdigest()[:12], 16) / 16 ** 12


def load_train_rows(embeddings: str | Path | None = None, data_dir: Path = DATA_DIR
                    ) -> tuple[list[Row], np.ndarray]:
    """The train rows embedded so far and their float16 embeddings [n, 768]: from a PQ pack
    (`embeddings` = FILE.npz, written by `pack_embeddings`) or from data_dir/emb_train.npy."""
    if embeddings is not None and Path(embeddings).suffix == ".npz":
        return load_pack(Path(embeddings), "train")
    if embeddings is not None:
        raise ValueError(f"--embeddings takes a PQ pack (.npz, `python -m training pack`), got {embeddings}; "
                         f"embedding arrays are read from --data-dir")
    rows, emb = load_embedded("train", Path(data_dir))
    return rows, emb.astype(np.float16)


def select_rows(rows: list[Row], data_fraction: float = 1.0, limit: int | None = None) -> np.ndarray:
    """Indices of the rows kept: every WordNet row, the open rows whose `subset_key` < data_fraction;
    then the first `limit` of those."""
    if not 0.0 < data_fraction <= 1.0:
        raise ValueError(f"data_fraction must be in (0, 1], got {data_fraction}")
    keep = [i for i, r in enumerate(rows) if data_fraction >= 1.0 or r.source == "wordnet"
            or subset_key(r.text) < data_fraction]
    return np.asarray(keep[:limit] if limit else keep, dtype=np.int64)


# --------------------------------------------------------------------------- distillation file

def read_kd_records(path: Path) -> list[list[str]]:
    """The records of a distillation file (tab-separated, no quoting: no field holds a tab or a line
    break), each [row, score, reference, output]."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; write it with `python -m tools.distill --out {path}`")
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines[0].split("\t") != KD_COLUMNS:
        raise ValueError(f"{path}: header {lines[0].split(chr(9))}, expected {KD_COLUMNS}")
    records = [line.split("\t") for line in lines[1:] if line]
    bad = next((i for i, r in enumerate(records) if len(r) != len(KD_COLUMNS)), None)
    if bad is not None:
        raise ValueError(f"{path}: line {bad + 2} has {len(records[bad])} fields, expected {len(KD_COLUMNS)}")
    return records


def read_kd(path: Path) -> dict[str, str]:
    """reference text -> teacher output, from a file written by `python -m tools.distill`."""
    return {rec[2]: rec[3] for rec in read_kd_records(path)}


# --------------------------------------------------------------------------- examples

@dataclass
class Examples:
    """What the trainer samples from: target texts, the embedding row of each, weights, and which are
    teacher outputs. `emb` is float16 [n_rows, 768]; `n_rows` counts the train rows used."""
    texts: list[str]
    emb_index: np.ndarray
    weight: np.ndarray
    is_kd: np.ndarray
    emb: np.ndarray
    n_rows: int

    def summary(self) -> dict:
        kd = self.is_kd
        return {"rows": self.n_rows, "examples": len(self.texts), "kd_examples": int(kd.sum()),
                "copies_per_epoch": round(float(self.weight.sum()), 1),
                "kd_copies_per_epoch": round(float(self.weight[kd].sum()), 1)}


def build_examples(rows: list[Row], emb: np.ndarray, wordnet_weight: float = 1.0, data_fraction: float = 1.0,
                   limit: int | None = None, kd: dict[str, str] | None = None, kd_weight: float = 1.0) -> Examples:
    """Examples from train rows (see the module docstring)."""
    if wordnet_weight < 0 or kd_weight < 0:
        raise ValueError(f"weights must be >= 0, got wordnet_weight={wordnet_weight}, kd_weight={kd_weight}")
    idx = select_rows(rows, data_fraction, limit)
    if len(idx) == 0:
        raise ValueError(f"no train rows left (data_fraction={data_fraction}, limit={limit}, {len(rows)} rows embedded)")
    kept = [rows[i] for i in idx]
    row_w = np.array([wordnet_weight if r.source == "wordnet" else 1.0 for r in kept])
    texts, emb_index, weight = [r.text for r in kept], np.arange(len(kept)), row_w
    is_kd = np.zeros(len(kept), dtype=bool)
    if kd and kd_weight > 0:
        hits = [j for j, r in enumerate(kept) if r.text in kd]
        texts = texts + [kd[kept[j].text] for j in hits]
        emb_index = np.concatenate([emb_index, np.asarray(hits, dtype=np.int64)])
        weight = np.concatenate([weight, row_w[hits] * kd_weight])
        is_kd = np.concatenate([is_kd, np.ones(len(hits), dtype=bool)])
    if weight.sum() <= 0:
        raise ValueError(f"every example has weight 0 (wordnet_weight={wordnet_weight}, {len(kept)} rows, all WordNet)")
    return Examples(texts, emb_index, weight, is_kd, np.ascontiguousarray(emb[idx]), len(kept))


def epoch_examples(weight: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Example indices of one epoch: floor(w) copies of each, plus one with probability frac(w).
    All weights 1: every example once, and no random numbers drawn (the round-1 batch order)."""
    whole = np.floor(weight).astype(np.int64)
    frac = weight - whole
    if frac.any():
        whole = whole + (rng.random(len(weight)) < frac)
    if (whole == 1).all():
        return np.arange(len(weight))
    return np.repeat(np.arange(len(weight)), whole)


# --------------------------------------------------------------------------- dev sets

def load_dev(n: int, split: str = "dev", data_dir: Path = DATA_DIR) -> tuple[list[str], torch.Tensor]:
    """The first n texts of a dev split, taken source by source in turn as `python -m eval --split`
    takes them (`balanced_order`: open-dev's first rows in corpus order are GCIDE definitions), and
    their exact embeddings (data_dir/emb_{split}.npy, else encoded here)."""
    emb = None
    if embedding_paths(split, Path(data_dir))[0].exists():
        rows, emb = load_embedded(split, Path(data_dir))
        if len(rows) < min(n, len(load_rows(split))):
            raise ValueError(f"only {len(rows)} rows of {split} are embedded in {data_dir}; need {n}")
    else:
        rows = load_rows(split)
    take = balanced_order([r.source for r in rows])[:n]
    texts = [rows[i].text for i in take]
    return texts, torch.as_tensor(emb[take] if emb is not None else encode(texts))


# --------------------------------------------------------------------------- sequences and batches

def pack_sequences(token_lists: list[list[int]], max_len: int, bos: int, eos: int, pad: int):
    """[N, max_len + 1] int array of <bos> t_1 .. t_n <eos> (truncated to max_len tokens), and lengths."""
    seqs = np.full((len(token_lists), max_len + 1), pad, dtype=np.int32)
    lengths = np.empty(len(token_lists), dtype=np.int32)
    for i, ids in enumerate(token_lists):
        s = [bos] + ids[: max_len - 1] + [eos]
        seqs[i, : len(s)] = s
        lengths[i] = len(s) - 1  # input positions
    return seqs, lengths


def length_bucketed_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffle, sort by length with jitter, cut into batches, shuffle the batch order."""
    order = np.argsort(lengths + rng.random(len(lengths)) * 2.0, kind="stable")
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def add_noise(emb: torch.Tensor, std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Unit vectors + isotropic Gaussian noise of total norm ~std, renormalised (cos to clean ~ 1/sqrt(1+std^2))."""
    if std <= 0:
        return emb
    noise = torch.randn(emb.shape, device=emb.device, generator=generator) * (std / math.sqrt(emb.shape[1]))
    return F.normalize(emb + noise, dim=-1)


# --------------------------------------------------------------------------- PQ pack

def pack_embeddings(split: str, out: Path, n_bytes: int = 64, data_dir: Path = DATA_DIR, train_n: int = 50_000,
                    seed: int = 0) -> dict:
    """Product-quantise the embedded rows of a split (n_bytes sub-vectors of 8 bits each) into one .npz:
    codes [n_done, n_bytes] uint8, centroids [n_bytes, 256, 768 / n_bytes], the done mask of the
    split (bit-packed) and the sha256 of its texts. 641,373 rows take 41 MB at 64 bytes: what fits
    the 64 MiB that travels to a lent GPU machine. Returns size and mean reconstruction cosine."""
    import faiss

    if EMBED_DIM % n_bytes:
        raise ValueError(f"n_bytes must divide {EMBED_DIM}, got {n_bytes}")
    rows, x = load_embedded(split, Path(data_dir))
    all_rows = load_rows(split)
    done_path = embedding_paths(split, Path(data_dir))[1]
    done = np.load(done_path)
    rng = np.random.default_rng(seed)
    pq = faiss.ProductQuantizer(EMBED_DIM, n_bytes, 8)
    pq.train(np.ascontiguousarray(x[rng.choice(len(x), min(train_n, len(x)), replace=False)]))
    codes = np.concatenate([pq.compute_codes(np.ascontiguousarray(x[s:s + 65536])) for s in range(0, len(x), 65536)])
    centroids = faiss.vector_to_array(pq.centroids).reshape(n_bytes, 256, EMBED_DIM // n_bytes).astype(np.float32)
    check = rng.choice(len(x), min(5000, len(x)), replace=False)
    rec = dequantize(codes[check], centroids)
    mean_cos = float((rec * x[check]).sum(1).mean())
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, codes=codes, centroids=centroids, done=np.packbits(done),
             texts_sha256=np.array(_texts_sha256([r.text for r in all_rows])), mean_cos=np.array(mean_cos))
    return {"file": str(out), "rows": len(codes), "bytes_per_row": n_bytes, "mb": round(out.stat().st_size / 2**20, 1),
            "mean_cos": round(mean_cos, 4)}


def dequantize(codes: np.ndarray, centroids: np.ndarray, chunk: int = 16384) -> np.ndarray:
    """Unit float16 vectors [N, 768] from PQ codes [N, M] and centroids [M, 256, dsub]."""
    out = np.empty((len(codes), centroids.shape[0] * centroids.shape[2]), dtype=np.float16)
    m = np.arange(centroids.shape[0])[None, :]
    for s in range(0, len(codes), chunk):
        v = centroids[m, codes[s:s + chunk]].reshape(len(codes[s:s + chunk]), -1)
        out[s:s + chunk] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def load_pack(path: Path, split: str) -> tuple[list[Row], np.ndarray]:
    """(rows, float16 embeddings) from a PQ pack, checked against the split's texts."""
    pack = np.load(path)
    missing = [k for k in PACK_KEYS if k not in pack]
    if missing:
        raise ValueError(f"{path} is not a PQ pack of `python -m training pack` (missing {missing})")
    all_rows = load_rows(split)
    if str(pack["texts_sha256"]) != _texts_sha256([r.text for r in all_rows]):
        raise ValueError(f"{path} was packed for other texts than split {split!r} holds now; pack it again")
    done = np.unpackbits(pack["done"])[: len(all_rows)].astype(bool)
    codes = pack["codes"]
    if done.sum() != len(codes):
        raise ValueError(f"{path}: {len(codes)} codes but {int(done.sum())} rows marked done")
    return [all_rows[i] for i in np.flatnonzero(done)], dequantize(codes, pack["centroids"])

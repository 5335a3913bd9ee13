"""Training data: texts and embeddings of the corpus splits, packed token sequences, batches, noise."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from decoders.base import EMBED_DIM
from decoders.corpus import DATA_DIR, load_split
from decoders.encoder import encode


def load_embedding_file(path: Path) -> np.ndarray:
    """float16 [N, 768] from a .npy, or from a product-quantised pack (.npz: codes, centroids)."""
    path = Path(path)
    if path.suffix == ".npz":
        pack = np.load(path)
        codes, cent = pack["codes"], pack["centroids"].astype(np.float32)  # [N, M], [M, 256, dsub]
        out = np.empty((codes.shape[0], cent.shape[0] * cent.shape[2]), dtype=np.float16)
        for start in range(0, len(codes), 16384):
            c = codes[start:start + 16384]
            v = cent[np.arange(cent.shape[0])[None, :], c].reshape(len(c), -1)
            out[start:start + 16384] = v / np.linalg.norm(v, axis=1, keepdims=True)
        return out
    return np.load(path).astype(np.float16)


def load_train(embeddings: Path | None = None, limit: int | None = None) -> tuple[list[str], np.ndarray]:
    """The train split's texts and float16 embeddings [N, 768] (default data/emb_train.npy)."""
    texts = load_split("train")
    path = Path(embeddings or DATA_DIR / "emb_train.npy")
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; run `python -m decoders.corpus embed --split train`")
    emb = load_embedding_file(path)
    if emb.shape != (len(texts), EMBED_DIM):
        raise ValueError(f"{path} has shape {emb.shape}; expected {(len(texts), EMBED_DIM)} for the train split")
    if limit:
        texts, emb = texts[:limit], emb[:limit]
    return texts, emb


def load_dev(n: int) -> tuple[list[str], torch.Tensor]:
    """The first n dev texts and their exact embeddings (data/emb_dev.npy, else encoded here)."""
    texts = load_split("dev")[:n]
    path = DATA_DIR / "emb_dev.npy"
    if path.exists():
        return texts, torch.as_tensor(np.load(path)[:n].astype(np.float32))
    return texts, torch.as_tensor(encode(texts))


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

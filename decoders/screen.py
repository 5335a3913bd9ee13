"""Screen: a cheap stand-in for all-mpnet-base-v2 that picks which proposals the hybrid encodes.

A hybrid step proposes tens of texts per row, and encoding them with all-mpnet-base-v2 takes most
of the step. all-MiniLM-L6-v2 (6 layers of width 384 against mpnet's 12 of 768) costs about a
quarter as much per text (2.2 against 8.2 ms in 36-text bfloat16 batches on 2 threads of the AMX
Xeon, session 12). A linear map fitted on the train split places its embeddings in mpnet's
space,

    m(t) = MiniLM(t) (384, unit length)  ->  W m(t) + b  (768)  ->  unit length  =  ẽ(t)

and cos(ẽ(t), e) ranks a step's proposals: only the `screen` best of each row go on to mpnet,
which alone scores them, so the screen decides what is measured, never what is kept. W and b
are ridge regression from MiniLM to mpnet embeddings of train sentences (training/screen.py).

Checkpoint: decoders/checkpoint.py, kind "screen"; model.safetensors holds the map, config.json
names the text encoder. There is no tokenizer: the text side is the named encoder's.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from . import checkpoint
from .base import EMBED_DIM
from .encoder import MINILM, default_dtype, encode, load_encoder

ROOT = Path(__file__).resolve().parent.parent
ASSET_DIR = ROOT / "assets" / "screen"
KIND = "screen"   # config.json "kind"


@dataclass
class Config:
    text_encoder: str = MINILM     # the cheap encoder whose embeddings are mapped
    text_dim: int = 384
    embed_dim: int = EMBED_DIM

    def __post_init__(self):
        for name in ("text_dim", "embed_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"screen {name} must be >= 1, got {getattr(self, name)}")


class ScreenMap(nn.Module):
    """W m + b: the cheap encoder's embedding placed in the target encoder's space."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.map = nn.Linear(cfg.text_dim, cfg.embed_dim)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.map(m), dim=-1)


class NoTokenizer:
    """The checkpoint's tokenizer slot: the screen reads text through its text encoder."""
    special_ids: dict = {}

    def save(self, directory: Path) -> None:
        pass

    @classmethod
    def load(cls, directory: Path) -> "NoTokenizer":
        return cls()


class Screen:
    """ẽ(t) for texts, and the k texts whose ẽ lies nearest a target."""

    def __init__(self, model: ScreenMap, device: str = "cpu", encode_texts: Callable[[list[str]], np.ndarray] | None = None):
        """`encode_texts` replaces the named text encoder (tests); by default it runs in the
        device's default dtype (bfloat16 where computed natively)."""
        self.model, self.device = model.to(device).eval(), device
        self._encode = encode_texts

    @property
    def num_parameters(self) -> int:
        """The map's parameters and the text encoder's (it runs at every step)."""
        if self._encode is not None:
            return self.model.num_parameters()
        enc = load_encoder(self.model.cfg.text_encoder, self.device, dtype=default_dtype(self.device))
        return self.model.num_parameters() + sum(p.numel() for p in enc.parameters())

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        if self._encode is not None:
            return self._encode(texts)
        return encode(texts, name=self.model.cfg.text_encoder, device=self.device, strict=False,
                      dtype=default_dtype(self.device), batch_size=128)

    @torch.no_grad()
    def embed(self, texts: list[str]) -> np.ndarray:
        """ẽ: unit float32 [N, embed_dim], the texts' estimated target-encoder embeddings."""
        if not texts:
            return np.zeros((0, self.model.cfg.embed_dim), np.float32)
        m = torch.as_tensor(np.asarray(self.encode_texts(texts), dtype=np.float32), device=self.device)
        if m.ndim != 2 or m.shape[1] != self.model.cfg.text_dim:
            raise ValueError(f"screen text embeddings must be [N, {self.model.cfg.text_dim}], got {tuple(m.shape)}")
        return self.model(m).float().cpu().numpy()

    def pick(self, targets: np.ndarray, texts: list[list[str]], k: int) -> list[list[str]]:
        """For each row i: the k texts of texts[i] with the highest cos(ẽ(t), targets[i]), best
        first; a row with k texts or fewer keeps them all, in their order. One encoder batch."""
        over = [i for i, row in enumerate(texts) if len(row) > k]
        flat = [t for i in over for t in texts[i]]
        est = self.embed(flat)
        out, at = [list(row) for row in texts], 0
        for i in over:
            s = est[at:at + len(texts[i])] @ np.asarray(targets[i], dtype=np.float32)
            at += len(texts[i])
            out[i] = [texts[i][j] for j in np.argsort(-s, kind="stable")[:k]]
        return out


def has_checkpoint(directory: Path = ASSET_DIR) -> bool:
    return (Path(directory) / checkpoint.CONFIG).exists()


def load(device: str = "cpu", directory: Path = ASSET_DIR) -> Screen:
    model, _ = checkpoint.load(directory, KIND, Config, ScreenMap, NoTokenizer, device)
    return Screen(model, device)

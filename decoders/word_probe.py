"""Word probe: which words a sentence holds, read from its embedding (a bag-of-words inversion).

Sentence embeddings keep much of a sentence's vocabulary; a multi-label classifier over words
recovers it (Song & Raghunathan, "Information Leakage in Embedding Models", CCS 2020). The
probe is that classifier for all-mpnet-base-v2:

    e (768) -> Linear -> GELU -> Linear -> one logit per word of the vocabulary

The vocabulary is the train split's `vocab_size` most frequent words (lower-cased, `words()`),
the labels are the set of words of each sentence, the loss binary cross-entropy
(training/word_probe.py). The hybrid decoder steers its word-level edits with it
(decoders/hybrid.py, `word_edits`): insert a word the target likely holds and the hypothesis
lacks, delete or replace a hypothesis word the target likely does not hold; the encoder judges
every edit as it judges every other proposal, so the probe only decides what is tried.

Checkpoint: decoders/checkpoint.py, kind "word-probe"; the vocabulary is its tokenizer.json.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from . import checkpoint
from .base import EMBED_DIM

ROOT = Path(__file__).resolve().parent.parent
ASSET_DIR = ROOT / "assets" / "word_probe"
KIND = "word-probe"   # config.json "kind"
WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def words(text: str) -> list[str]:
    """The probe's words of a text: lower-cased runs of letters and digits (with an 's, 't, ... tail)."""
    return WORD.findall(text.lower())


@dataclass
class Config:
    vocab_size: int = 12288
    hidden: int = 768
    embed_dim: int = EMBED_DIM

    def __post_init__(self):
        for name in ("vocab_size", "hidden", "embed_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"word probe {name} must be >= 1, got {getattr(self, name)}")


class WordProbeModel(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.net = nn.Sequential(nn.Linear(cfg.embed_dim, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, cfg.vocab_size))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        """Logits [N, vocab_size] of each word being in the sentence."""
        return self.net(emb)


class WordVocab:
    """The probe's vocabulary: word <-> column. Saved as tokenizer.json, beside the weights."""

    def __init__(self, vocab: list[str]):
        if len(set(vocab)) != len(vocab):
            raise ValueError("the word vocabulary has repeated words")
        self.vocab = list(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def special_ids(self) -> dict:
        return {}

    def ids(self, text: str) -> list[int]:
        """Columns of the text's words that are in the vocabulary, each once."""
        return list(dict.fromkeys(self.index[w] for w in words(text) if w in self.index))

    def save(self, directory: Path) -> None:
        (Path(directory) / checkpoint.TOKENIZER).write_text(json.dumps({"kind": "words", "words": self.vocab}))

    @classmethod
    def load(cls, directory: Path) -> "WordVocab":
        path = Path(directory) / checkpoint.TOKENIZER
        if not path.exists():
            raise FileNotFoundError(f"no word vocabulary in {directory} (no {checkpoint.TOKENIZER})")
        data = json.loads(path.read_text())
        if data.get("kind") != "words":
            raise ValueError(f"{path} is not a word vocabulary (kind {data.get('kind')!r}, expected 'words')")
        return cls(data["words"])


class WordProbe:
    """The trained probe with its vocabulary: p(word in sentence | e) for every vocabulary word."""

    def __init__(self, model: WordProbeModel, vocab: WordVocab, device: str = "cpu"):
        self.model, self.vocab, self.device = model.to(device).eval(), vocab, device

    @property
    def num_parameters(self) -> int:
        return self.model.num_parameters()

    @torch.no_grad()
    def probs(self, emb) -> np.ndarray:
        """float32 [N, vocab_size] probabilities for N embeddings [N, 768]."""
        x = torch.as_tensor(np.asarray(emb, dtype=np.float32), device=self.device)
        if x.ndim != 2 or x.shape[1] != self.model.cfg.embed_dim:
            raise ValueError(f"word probe input must be [N, {self.model.cfg.embed_dim}], got {tuple(x.shape)}")
        return torch.sigmoid(self.model(x)).float().cpu().numpy()


def has_checkpoint(directory: Path = ASSET_DIR) -> bool:
    return (Path(directory) / checkpoint.CONFIG).exists()


def load(device: str = "cpu", directory: Path = ASSET_DIR) -> WordProbe:
    model, vocab = checkpoint.load(directory, KIND, Config, WordProbeModel, WordVocab, device)
    return WordProbe(model, vocab, device)

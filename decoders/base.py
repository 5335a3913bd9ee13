"""The contract every decoder follows: `decode(embeddings, sampling) -> list[list[Decoded]]`.

A decoder takes a batch of 768-d sentence embeddings (all-mpnet-base-v2 space) and
returns, for each row, `sampling.num_samples` candidate texts. Inputs are checked
here, once, so that every decoder, the app and the benchmark reject bad vectors
with the same readable message.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

EMBED_DIM = 768  # all-mpnet-base-v2


@dataclass
class Sampling:
    temperature: float = 0.0   # 0 = greedy (argmax); higher = flatter distribution
    top_k: int = 0             # keep the k most likely candidates (0 = no limit)
    top_p: float = 1.0         # keep the smallest set whose probability reaches p
    max_new_tokens: int = 63   # token decoders: generation length cap (x3 bytes for RET); the generative
                               # decoder's limit: 40 % of open-test sentences need more than 32 tokens
    num_samples: int = 1       # candidates returned per embedding
    seed: int = 0              # seeds a torch.Generator: same seed, same samples

    def __post_init__(self):
        if not (isinstance(self.temperature, (int, float)) and math.isfinite(self.temperature)) or self.temperature < 0:
            raise ValueError(f"temperature must be a finite number >= 0, got {self.temperature!r}")
        if int(self.top_k) != self.top_k or self.top_k < 0:
            raise ValueError(f"top_k must be an integer >= 0 (0 = off), got {self.top_k!r}")
        if not (0.0 < self.top_p <= 1.0):
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if int(self.max_new_tokens) != self.max_new_tokens or not (1 <= self.max_new_tokens <= 512):
            raise ValueError(f"max_new_tokens must be an integer in [1, 512], got {self.max_new_tokens!r}")
        if int(self.num_samples) != self.num_samples or not (1 <= self.num_samples <= 64):
            raise ValueError(f"num_samples must be an integer in [1, 64], got {self.num_samples!r}")
        self.top_k, self.max_new_tokens, self.num_samples, self.seed = (
            int(self.top_k), int(self.max_new_tokens), int(self.num_samples), int(self.seed))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0 or self.top_k == 1


@dataclass
class Decoded:
    text: str
    score: float | None = None  # decoder's own score: cosine for retrieval, mean log-prob for LMs
    extra: dict = field(default_factory=dict)


def validate_embeddings(embeddings, dim: int = EMBED_DIM) -> torch.Tensor:
    """Return `embeddings` as unit-length float32 rows [N, dim], or raise ValueError naming the problem.

    Accepts a tensor, a numpy array or nested lists of real numbers. A single vector [dim]
    becomes [1, dim]. Rows are L2-normalised (the encoder's outputs are unit length; a raw
    vector from elsewhere is put on the same sphere). The check and the normalisation run in
    float64 on rows rescaled by their largest entry, so only the direction counts: a row of
    1e38 or of 1e-30 is decoded like any other, and only a row of exact zeros is "all-zero".
    """
    if embeddings is None:
        raise ValueError("embeddings is None; expected an array of shape [N, 768]")
    if isinstance(embeddings, torch.Tensor):
        if embeddings.is_complex():
            raise ValueError("embeddings are complex numbers; expected real numbers")
        x = embeddings.detach().to("cpu", torch.float64)
    else:
        try:
            arr = np.asarray(embeddings)
        except (TypeError, ValueError) as e:
            raise ValueError(f"embeddings could not be read as a float array: {e}") from None
        if np.iscomplexobj(arr):
            raise ValueError("embeddings are complex numbers; expected real numbers")
        try:
            x = torch.from_numpy(np.array(arr, dtype=np.float64))
        except (TypeError, ValueError) as e:
            raise ValueError(f"embeddings could not be read as a (real) float array: {e}") from None
    if x.ndim == 1:
        x = x.unsqueeze(0)
    if x.ndim != 2:
        raise ValueError(f"embeddings must have shape [N, {dim}] or [{dim}], got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError("embeddings is an empty batch (0 rows)")
    if x.shape[1] != dim:
        raise ValueError(f"embeddings must be {dim}-dimensional (all-mpnet-base-v2), got {x.shape[1]} dimensions")
    bad = ~torch.isfinite(x).all(dim=1)
    if bad.any():
        rows = bad.nonzero().flatten().tolist()
        raise ValueError(f"embeddings contain NaN or inf in row(s) {rows[:10]}")
    scale = x.abs().amax(dim=1, keepdim=True)
    zero = scale.squeeze(1) == 0
    if zero.any():
        rows = zero.nonzero().flatten().tolist()
        raise ValueError(f"embeddings contain all-zero vector(s) in row(s) {rows[:10]}; a zero vector has no direction to decode")
    x = x / scale  # largest entry 1: the norm below neither overflows nor underflows
    return (x / x.norm(dim=1, keepdim=True)).to(torch.float32)


class Decoder:
    """Base class: subclasses set `name` and implement `_decode` on validated, unit-norm input."""

    name: str = "decoder"

    def decode(self, embeddings, sampling: Sampling | None = None) -> list[list[Decoded]]:
        """Decode a batch [N, 768] into N lists of `sampling.num_samples` candidates."""
        sampling = sampling or Sampling()
        x = validate_embeddings(embeddings)
        out = self._decode(x, sampling)
        assert len(out) == x.shape[0], f"{self.name} returned {len(out)} results for {x.shape[0]} inputs"
        return out

    def _decode(self, x: torch.Tensor, sampling: Sampling) -> list[list[Decoded]]:
        raise NotImplementedError

    @property
    def num_parameters(self) -> int:
        """Trainable parameters (neural decoders); stored vectors are reported separately."""
        raise NotImplementedError

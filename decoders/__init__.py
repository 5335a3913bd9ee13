"""Decoders from all-mpnet-base-v2 embeddings back to text, behind one registry.

    from decoders import get_decoder, Sampling
    dec = get_decoder("phrase-bank")
    dec.decode(embeddings, Sampling(temperature=0.7, top_k=20, seed=1))
"""
from __future__ import annotations

import importlib
from functools import lru_cache

from .base import EMBED_DIM, Decoded, Decoder, Sampling, validate_embeddings

# name -> "module:loader"; each loader returns a ready Decoder from the shipped assets.
DECODERS = {
    "phrase-bank": "decoders.phrase_bank:load",
    "generative": "decoders.generative:load",
    "ret": "decoders.ret:load",
    "ret-int8": "decoders.ret:load_int8",
    "hybrid": "decoders.hybrid:load",
}


def available_decoders() -> list[str]:
    return list(DECODERS)


@lru_cache(maxsize=None)
def get_decoder(name: str, device: str = "cpu") -> Decoder:
    """The decoder registered as `name`, loaded once per process and device."""
    if name not in DECODERS:
        raise ValueError(f"unknown decoder {name!r}; valid decoders: {', '.join(DECODERS)}")
    module, fn = DECODERS[name].split(":")
    return getattr(importlib.import_module(module), fn)(device=device)


__all__ = ["EMBED_DIM", "DECODERS", "Decoded", "Decoder", "Sampling", "available_decoders",
           "get_decoder", "validate_embeddings"]

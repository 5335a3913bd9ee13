"""Decoders from all-mpnet-base-v2 embeddings back to text, behind one registry.

    from decoders import get_decoder, Sampling
    dec = get_decoder("phrase-bank")
    dec.decode(embeddings, Sampling(temperature=0.7, top_k=20, seed=1))
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import lru_cache

from .base import EMBED_DIM, Decoded, Decoder, Sampling, validate_embeddings


@dataclass(frozen=True)
class DecoderSpec:
    loader: str            # "module:function"; the function takes device= and returns a ready Decoder
    default: bool = True   # decoded by default in the app and in `python -m eval --decoders default`
    summary: str = ""      # one line for the UI and the README


# The only list of decoder names in the project.
DECODERS: dict[str, DecoderSpec] = {
    "phrase-bank": DecoderSpec("decoders.phrase_bank:load", True, "nearest phrase of a FAISS index over the corpus"),
    "generative": DecoderSpec("decoders.generative:load", True, "compact RMSNorm/RoPE/gated transformer, BPE"),
    "ret": DecoderSpec("decoders.ret:load", True, "byte-level transformer, one shared block looped"),
    "hybrid": DecoderSpec("decoders.hybrid:load", True, "candidates re-encoded by the encoder, corrected with its feedback"),
    "generative-l": DecoderSpec("decoders.generative:load_large", False,
                                "the generative decoder at 27M parameters: reference point and distillation teacher"),
}


def available_decoders() -> list[str]:
    """Every registered decoder name."""
    return list(DECODERS)


def default_decoders() -> list[str]:
    """The decoders shown and run by default (the app's columns, `--decoders default`)."""
    return [name for name, spec in DECODERS.items() if spec.default]


def check_decoder_names(names) -> list[str]:
    """`names` as a list, or ValueError naming the unknown ones and listing the valid ones."""
    try:
        names = list(names)
    except TypeError:
        raise ValueError(f"decoders must be a list of names, got {type(names).__name__}; "
                         f"valid decoders: {', '.join(DECODERS)}") from None
    unknown = [n for n in names if not isinstance(n, str) or n not in DECODERS]
    if unknown:
        raise ValueError(f"unknown decoder(s) {', '.join(map(repr, unknown))}; valid decoders: {', '.join(DECODERS)}")
    return names


@lru_cache(maxsize=None)
def get_decoder(name: str, device: str = "cpu") -> Decoder:
    """The decoder registered as `name`, loaded once per process and device."""
    check_decoder_names([name])
    module, fn = DECODERS[name].loader.split(":")
    return getattr(importlib.import_module(module), fn)(device=device)


__all__ = ["EMBED_DIM", "DECODERS", "DecoderSpec", "Decoded", "Decoder", "Sampling", "available_decoders",
           "check_decoder_names", "default_decoders", "get_decoder", "validate_embeddings"]

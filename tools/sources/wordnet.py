"""WordNet 3.0 glosses and usage examples (Debian wordnet-base), the corpus of round 1.

Its splits are fixed by `split_of_all` (sha1 of the lower-cased text: the 2,000 smallest are
test, the next 2,000 dev) and written to assets/corpus/wordnet.tsv.gz; the open-domain build
reads that file, so every WordNet number stays comparable across rounds.
"""
from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path
from typing import Iterator

NAME = "wordnet"
PACKAGE = "Debian wordnet-base (WordNet 3.0)"
LICENSE = "WordNet 3.0 licence (Princeton University): use, copy, modify and distribute with the copyright notice"
INSTALL = "apt-get install wordnet-base"
DEFAULT_ROOT = Path("/usr/share/wordnet")
POS_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
MIN_WORDS, MAX_WORDS = 3, 32
N_TEST, N_DEV = 2000, 2000


def _clean(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip()


def parse_gloss(gloss: str) -> list[tuple[str, str]]:
    """Split one synset gloss into (kind, text) pairs; kind is 'example' or 'gloss'."""
    out = []
    for part in gloss.split(";"):
        part = part.strip()
        if not part:
            continue
        if part.startswith('"'):
            part = re.sub(r'"\s*-+\s*[^"]*$', '"', part)  # drop a trailing "- Author attribution
            text, kind = part.strip().strip('"'), "example"
        else:
            text, kind = part, "gloss"
        text = _clean(text)
        if '"' in text or not (MIN_WORDS <= len(text.split()) <= MAX_WORDS):
            continue
        out.append((kind, text))
    return out


def read(root: Path | None = None) -> Iterator[tuple[str, str]]:
    """All (kind, text) pairs, examples first, deduplicated case-insensitively."""
    root = Path(root or DEFAULT_ROOT)
    examples, glosses = [], []
    for name in POS_FILES:
        path = root / name
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: install WordNet 3.0 with `{INSTALL}` or pass its dict folder")
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("  ") or "|" not in line:
                    continue  # licence header
                for kind, text in parse_gloss(line.split("|", 1)[1]):
                    (examples if kind == "example" else glosses).append((kind, text))
    seen = set()
    for kind, text in examples + glosses:
        if text.lower() not in seen:
            seen.add(text.lower())
            yield kind, text


def split_of_all(texts: list[str]) -> list[str]:
    """Deterministic split by sha1 of the lower-cased text: smallest 2,000 test, next 2,000 dev."""
    order = sorted(range(len(texts)), key=lambda i: hashlib.sha1(texts[i].lower().encode()).hexdigest())
    split = ["train"] * len(texts)
    for rank, i in enumerate(order[: N_TEST + N_DEV]):
        split[i] = "test" if rank < N_TEST else "dev"
    return split


def build(out: Path, root: Path | None = None) -> int:
    """Write WordNet's split file (split, source, text) where source is 'example' or 'gloss'."""
    pairs = list(read(root))
    splits = split_of_all([t for _, t in pairs])
    out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(out, "wt", encoding="utf-8", compresslevel=9) as f:
        f.write("split\tsource\ttext\n")
        for (kind, text), split in zip(pairs, splits):
            f.write(f"{split}\t{kind}\t{text}\n")
    return len(pairs)

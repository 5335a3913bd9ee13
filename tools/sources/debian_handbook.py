"""The Debian Administrator's Handbook (Debian debian-handbook), English edition only (html/en-US).

Paragraphs are the `div.para` elements. Link footnotes (`div.url`, "-> https://..."), index anchors
and the legal notice are dropped. A paragraph is dropped whole when it holds a code block, a
superscript, or inline code that does not read as a word (a command line such as `apt install
package`, a path, an option, a file name with a dot, a configuration key), or when its text has
code-like tokens; single-word commands and package names (`apt`, `synaptic`) are kept as words.
kind: "sidebar" for the boxed asides ("BACK TO BASICS", "CULTURE", ...), "prose" for the running text.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from lxml import html

NAME = "debian_handbook"
PACKAGE = "Debian debian-handbook"
LICENSE = "GPL-2.0+ or CC-BY-SA-3.0 (Raphael Hertzog, Roland Mas, Freexian SARL)"
INSTALL = "apt-get install debian-handbook"
DEFAULT_ROOT = Path("/usr/share/doc/debian-handbook/html/en-US")

CODE_TAGS = ("code", "kbd", "samp", "var", "pre")
# Code in running text: paths, options, dotted names and file names (not e.g. or 1.2), assignments,
# brackets, shell punctuation, snake_case, ::, ->, user@host, quoted punctuation.
CODE_LIKE = re.compile(
    r"\(\)|__|[=<>{}\[\]\\|`~^$#@*]|::|->|"
    r"(?<![\w.])/\w|\w/\w+/|"
    r"\b[A-Za-z_][\w-]*\.[A-Za-z_]\w+|"
    r"\w_\w|(?<!\w)_\w|\w_(?!\w)|(?<![\w-])--?\w|\b0x[0-9a-fA-F]+|"
    r"[\'\"\u2018\u201c][^\w\s]+[\'\"\u2019\u201d]"
)
_WORD = re.compile(r"[A-Za-z][\w+-]*")  # inline code kept only when it is one word: apt-get, synaptic
ABBREVIATIONS = re.compile(r"\b(?:e\.g|i\.e|etc|vs|a\.k\.a|cf|approx|resp|viz)\.", re.I)
_PARSER = html.HTMLParser(encoding="utf-8")


def has_code(text: str) -> bool:
    """True when text contains an inline code-like token."""
    return bool(CODE_LIKE.search(ABBREVIATIONS.sub("", text)))


def _classes(e) -> set[str]:
    return set((e.get("class") or "").split())


def paragraph_text(para) -> str | None:
    """A div.para element -> its clean text, or None when it holds code."""
    if para.xpath(".//pre | .//sup | .//div[contains(@class, 'para')]"):
        return None
    for url in para.xpath(".//div[@class='url'] | .//a[@class='indexterm']"):
        url.drop_tree()
    for code in para.iter(*CODE_TAGS):
        text = code.text_content().strip()
        if not _WORD.fullmatch(text) or has_code(text):
            return None
    text = re.sub(r"\s+", " ", para.text_content()).strip()
    if not text or has_code(text):
        return None
    return text


def page_paragraphs(page: str | bytes) -> Iterator[tuple[str, str]]:
    """One HTML page -> (kind, text) of its prose paragraphs."""
    tree = html.fromstring(page.encode("utf-8") if isinstance(page, str) else page, parser=_PARSER)
    for para in tree.xpath("//div[contains(concat(' ', @class, ' '), ' para ')]"):
        ancestors = [_classes(a) for a in para.iterancestors()]
        if any("legalnotice" in c or "toc" in c for c in ancestors):
            continue
        text = paragraph_text(para)
        if text:
            yield ("sidebar" if any("sidebar" in c for c in ancestors) else "prose"), text


def read(root: Path | None = None) -> Iterator[tuple[str, str]]:
    """root: the handbook's html/en-US folder."""
    root = Path(root) if root is not None else DEFAULT_ROOT
    pages = sorted(root.glob("*.html"))
    if not pages:
        raise FileNotFoundError(f"no HTML pages in {root}; install with: {INSTALL}")
    for path in pages:
        yield from page_paragraphs(path.read_bytes())

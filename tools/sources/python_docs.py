"""Prose paragraphs of the Python documentation, from Debian python3-doc (HTML in python3.X-doc).

Only `<p>` elements of each page's main body are read: code blocks, signatures (`<dt>`), tables,
footnotes, admonition titles, captions, audit-hook boilerplate, navigation, sidebars and footers are
skipped, and the "New in version 3.x:" / "Changed in version 3.x:" labels are dropped. A paragraph
with code in it (inline code that is not a plain word or number, such as `sys.argv`, `'utf-8'` or
`__init__()`, or text with `()`, `__`, `=`, `.py`, brackets, paths, dotted or snake_case names) is
dropped whole, as is one with non-Latin letters, so what is left reads as English.
Index, search, licence and copyright pages are skipped. kind is the documentation's part: "tutorial",
"library", "reference", "howto", "faq", "c-api", "whatsnew", ...
"""
from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Iterator

from lxml import html

NAME = "python_docs"
PACKAGE = "Debian python3-doc"
LICENSE = "PSF License Agreement (Python Software Foundation License Version 2)"
INSTALL = "apt-get install python3-doc"
DEFAULT_ROOT = Path("/usr/share/doc/python3-doc/html")  # a link to ../python3.X-doc/html

SKIP_PAGES = re.compile(r"(genindex.*|py-modindex|search|contents|license|copyright|download)\.html")
# <p> inside these (or with these classes) is not prose
SKIP_ANCESTORS = "table pre dt nav footer aside".split()
SKIP_CLASSES = {"highlight", "footnote", "footnote-list", "sphinxsidebar", "related", "footer",
                "toctree-wrapper", "admonition-title", "rubric", "caption", "audit-hook", "topic-title",
                "sidebar-title", "contents", "field-list"}
# Code in running text: calls, dunders, assignments/comparisons, file names, brackets and other
# punctuation English prose does not use, paths, dotted names (os.path, not e.g. or 3.11), snake_case,
# leading/trailing underscores, options, hex numbers, quoted punctuation such as ';', operators standing
# alone (char *, a % b), printf formats, C and config file names.
CODE_LIKE = re.compile(
    r"\(\)|__|[=<>{}\[\]\\|`~^$#@]|\.py\b|::|->|\*\w|\w\*|"
    r"(?<![\w.])/\w|\w/\w+/|"
    r"\b[A-Za-z_]\w*\.[A-Za-z_]\w+|"
    r"\w_\w|(?<!\w)_\w|\w_(?!\w)|(?<!\w)--?\w|\b0x[0-9a-fA-F]+|"
    r"[\'\"\u2018\u201c][^\w\s]+[\'\"\u2019\u201d]|"
    r"(?<!\S)[\'\"\u2018\u201c]?[*_%+/&]+[\'\"\u2019\u201d]?(?!\S)|%\w|"
    r"\w\.(?:h|c|o|so|dll|exe|cfg|ini|txt|toml|json)\b"
)
# Inline code kept as text only when it reads as words or a number: `True`, `str`, `async for`, `0`.
CODE_WORDS = re.compile(r"-?\d+(?:\.\d+)?|[A-Za-z][\w+-]*(?: [A-Za-z][\w+-]*)*")
# Dotted words that are English, not code (checked before CODE_LIKE's dotted-name rule).
ABBREVIATIONS = re.compile(r"\b(?:e\.g|i\.e|etc|vs|a\.k\.a|cf|approx|resp|viz)\.", re.I)
_PARSER = html.HTMLParser(encoding="utf-8")


def has_code(text: str) -> bool:
    """True when text contains an inline code-like token."""
    return bool(CODE_LIKE.search(ABBREVIATIONS.sub("", text)))


def is_latin(text: str) -> bool:
    """False when a letter is not in the Latin script (Greek, Cyrillic, CJK, Telugu examples) or the
    text holds U+FFFD, the replacement character."""
    letters = {c for c in text if ord(c) > 127 and c.isalpha()}
    return "\ufffd" not in text and all(unicodedata.name(c, "").startswith("LATIN") for c in letters)


def _skipped(p) -> bool:
    """True for a <p> that is not prose: by its class, or by an ancestor's tag or class."""
    for e in (p, *p.iterancestors()):
        if e.tag in SKIP_ANCESTORS or set((e.get("class") or "").split()) & SKIP_CLASSES:
            return True
    return False


def page_paragraphs(page: str | bytes) -> Iterator[str]:
    """One HTML page -> its clean prose paragraphs."""
    tree = html.fromstring(page.encode("utf-8") if isinstance(page, str) else page, parser=_PARSER)
    for body in tree.xpath('//div[@role="main"]'):
        for p in body.iter("p"):
            if _skipped(p):
                continue
            for label in p.xpath('.//span[contains(@class, "versionmodified")]'):
                label.drop_tree()  # "Changed in version 3.7: "; drop_tree keeps the tail text
            codes = [c.text_content() for c in p.iter("code", "kbd", "samp", "var")]
            text = re.sub(r"\s+", " ", p.text_content()).strip()
            if text and all(CODE_WORDS.fullmatch(c.strip()) for c in codes) and not has_code(text) \
                    and is_latin(text):
                yield text


def read(root: Path | None = None) -> Iterator[tuple[str, str]]:
    root = (Path(root) if root is not None else DEFAULT_ROOT).resolve()
    if not (root / "index.html").exists():
        raise FileNotFoundError(f"{root / 'index.html'} not found; install with: {INSTALL}")
    for path in sorted(root.rglob("*.html")):
        rel = path.relative_to(root)
        if rel.parts[0].startswith("_") or SKIP_PAGES.fullmatch(rel.name):
            continue
        if len(rel.parts) > 1:
            kind = rel.parts[0]  # library/os.html -> library
        else:
            kind = "glossary" if rel.stem == "glossary" else "misc"
        for text in page_paragraphs(path.read_bytes()):
            yield kind, text

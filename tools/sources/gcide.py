"""GCIDE, the GNU Collaborative International Dictionary of English, as packaged for dictd.

Webster's Revised Unabridged Dictionary (1913) plus later additions, among them glosses taken
from WordNet 1.5. The dictd file holds one entry per headword group:

    Whose \\Whose\\ (h[=oo]z), pron. [OE. whos, whas, AS. hw[ae]s,
       gen. of hw[=a]. See {Who}.]
       The possessive case of who or which. See {Who}, and {Which}.
       [1913 Webster]

             Whose daughter art thou? tell me, I pray thee. --Gen.
                                                      xxiv. 23.
       [1913 Webster]

Kinds yielded:
  definition          a sense of a Webster (or later, non-WordNet) entry
  example             the usage example after "as," in such a definition
  quotation           a literary quotation, its "--Author" citation removed
  note                a "Note:" or "Usage:" paragraph (explanatory prose)
  wordnet_definition  a definition from a block whose source tag names WordNet ([WordNet 1.5],
  wordnet_example     [1913 Webster + WordNet 1.5], [WordNet sense 2], ...): these overlap the
                      WordNet 3.0 glosses, so the builder must keep WordNet dev/test out of train
"""
from __future__ import annotations

import gzip
import re
import unicodedata
from pathlib import Path
from typing import Iterator

NAME = "gcide"
PACKAGE = "Debian dict-gcide"
LICENSE = "GPL-2.0-or-later (GCIDE; WordNet 1.5 parts under the WordNet licence)"
INSTALL = "apt-get install dict-gcide"
DEFAULT_ROOT = Path("/usr/share/dictd")

_B64 = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}

# GCIDE's ASCII codes for letters and symbols, e.g. immat['e]rial, a["e]roplane, Octodontid[ae].
ENTITIES = {
    "ae": "ae", "AE": "Ae", "oe": "oe", "OE": "Oe", "th": "th", "eth": "ð", "thorn": "þ", "yogh": "ȝ",
    "ng": "ŋ", "imac": "ī", "=ae": "ǣ", ",c": "ç", "~n": "ñ", "~a": "ã", "~e": "e", "~o": "õ",
    "deg": "°", "sect": "§", "middot": "·", "nbsp": " ", "ldqo": "“", "rdqo": "”", "sharp": "♯",
    "flat": "♭", "root": "√", "cuberoot": "∛", "male": "♂", "female": "♀", "hand": "☞",
    "pounds": "£", "times": "×", "divby": "÷", "div": "÷", "prime": "′", "bprime": "″", "rarr": "→",
    "para": "¶", "digamma": "ϝ", "cacute": "ć", "ccaron": "č", "zdot": "ż", "mdot": "ṃ",
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "zeta": "ζ", "eta": "η",
    "theta": "θ", "iota": "ι", "kappa": "κ", "lambda": "λ", "mu": "μ", "nu": "ν", "xi": "ξ",
    "omicron": "ο", "pi": "π", "rho": "ρ", "sigma": "σ", "tau": "τ", "upsilon": "υ", "phi": "φ",
    "chi": "χ", "psi": "ψ", "omega": "ω", "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ", "Lambda": "Λ",
    "Pi": "Π", "Sigma": "Σ", "Upsilon": "Υ", "Phi": "Φ", "Psi": "Ψ", "Omega": "Ω",
}
_ACCENTS = {"'": "\u0301", "`": "\u0300", "^": "\u0302", '"': "\u0308", "=": "\u0304", ".": "\u0323"}
_BREVE = "\u0306"


def _entity(code: str) -> str | None:
    """The text for a [code], or None when it is not a character code."""
    if code in ENTITIES:
        return ENTITIES[code]
    if len(code) == 2 and code[0] in _ACCENTS and code[1].isalpha():       # ['e] [`a] ["o] [=a] [.t]
        return unicodedata.normalize("NFC", code[1] + _ACCENTS[code[0]])
    if len(code) == 2 and code[1] == "^" and code[0].isalpha():            # [a^] breve
        return unicodedata.normalize("NFC", code[0] + _BREVE)
    if len(code) == 2 and code[0] == "^" and code[1].isalpha():            # [^o] circumflex
        return unicodedata.normalize("NFC", code[1] + "\u0302")
    return None


_ENTITY_RE = re.compile(r"\[([^\[\]\s]{1,8})\]")


def convert_entities(text: str) -> str:
    """Replace GCIDE character codes ([ae], ['e], [=a], [alpha], ...) by their characters; other
    bracket groups ([Obs.], [1913 Webster], [2]) are left for the callers."""
    def sub(m: re.Match) -> str:
        got = _entity(m.group(1))
        return m.group(0) if got is None else got
    return _ENTITY_RE.sub(sub, text)


# --- entries -----------------------------------------------------------------------------------

def _b64(s: str) -> int:
    n = 0
    for c in s:
        n = n * 64 + _B64[c]
    return n


def _headword(first_line: str) -> str:
    return first_line.split("\\", 1)[0].strip()


def entries(root: Path | None = None) -> Iterator[str]:
    """Every dictionary entry's raw text, once each, in file order (several headwords share one)."""
    root = Path(root) if root is not None else DEFAULT_ROOT
    index, data = root / "gcide.index", root / "gcide.dict.dz"
    if not data.exists():
        data = root / "gcide.dict"
    if not index.exists() or not data.exists():
        raise FileNotFoundError(f"GCIDE not found in {root} (need gcide.index and gcide.dict.dz); "
                                f"install it with `{INSTALL}`")
    index_lines = index.read_text(encoding="utf-8", errors="replace").splitlines()
    headwords = {line.split("\t", 1)[0].lower() for line in index_lines}
    spans = set()
    for line in index_lines:
        parts = line.split("\t")
        if len(parts) == 3 and not parts[0].startswith("00-"):
            spans.add((_b64(parts[1]), _b64(parts[2])))
    raw = gzip.open(data).read() if data.suffix == ".dz" else data.read_bytes()
    texts = []
    for off, length in sorted(spans):
        b = raw[off:off + length]
        try:
            texts.append(b.decode("utf-8"))
        except UnicodeDecodeError:
            texts.append(b.decode("cp1252", errors="replace"))
    for i, text in enumerate(texts):
        nxt = texts[i + 1].lstrip("\n").split("\n", 1)[0] if i + 1 < len(texts) else ""
        yield trim_leak(text, _headword(nxt), headwords)


def trim_leak(text: str, next_headword: str, headwords: set[str] = frozenset()) -> str:
    """The dictd conversion sometimes leaves the next entry's headword at the end of an entry
    ("... --Milton. Jonquil", "[1913 Webster] Carpel"): drop it. `headwords` (lower case) catches
    leaks of a headword other than the next one, after a full stop or a bracket."""
    body = text.rstrip()
    if next_headword and body.lower().endswith(" " + next_headword.lower()):
        return body[: -len(next_headword) - 1] + "\n"
    m = re.search(r"[.\]]\s+([A-Za-z][\w'-]*(?: [\w'-]+){0,2})$", body)
    if m and m.group(1).lower() in headwords:
        body = body[: m.start(1)].rstrip()
    return body + "\n"


# --- blocks ------------------------------------------------------------------------------------

_TAG_WORDS = re.compile(r"Webster|WordNet|PJC|Century|RDH|MW10|MI11|RHUD|^\s*(?:\+\s*)?(?:AS|GG|RP|JC)\s*$")
_TAG_LINE = re.compile(r"^\s*\[([^\[\]]*)\]\s*$")
_LABEL_LINE = re.compile(r"^\s*(?:pl\.\s*)?(?:\([^()]*\)[\s,.;]*)+$")


def is_tag(line: str) -> str | None:
    """The source named by a tag line ("[1913 Webster]", "[WordNet 1.5 +PJC]"), else None."""
    m = _TAG_LINE.match(line)
    return m.group(1) if m and _TAG_WORDS.search(m.group(1)) else None


def _depth(s: str) -> int:
    return s.count("[") + s.count("(") - s.count("]") - s.count(")")


def split_header(lines: list[str]) -> tuple[list[str], list[str]]:
    """(header lines, body lines): the header is the headword, pronunciations, part of speech and
    etymology, which may run over several lines while a bracket is open."""
    i, depth = 1, _depth(lines[0])
    while i < len(lines):
        line, prev = lines[i], lines[i - 1].rstrip()
        if not line.strip() or is_tag(line):
            break
        cont = (depth > 0 or not line.startswith(" ") or prev.endswith((",", "\\", "\\,"))
                or _LABEL_LINE.match(line) or line.lstrip().startswith("[") and _depth(line) <= 0)
        if not cont:
            break
        depth += _depth(line)
        i += 1
    return lines[:i], lines[i:]


def blocks(text: str) -> Iterator[tuple[str, list[str]]]:
    """(source tag, lines) for each block of an entry's body, the header removed. A block ends at a
    blank line or a tag line; a tag names the source of every untagged block before it."""
    lines = text.strip("\n").split("\n")
    if not lines or not lines[0].strip():
        return
    _, body = split_header(lines)
    pending: list[list[str]] = []
    cur: list[str] = []
    for line in body + [""]:
        tag = is_tag(line)
        if tag is not None or not line.strip():
            if cur:
                pending.append(cur)
                cur = []
            if tag is not None:
                for b in pending:
                    yield tag, b
                pending = []
        else:
            cur.append(line)
    for b in pending:
        yield "", b


# --- cleaning ----------------------------------------------------------------------------------

_CITE_START = re.compile(r"(?:^|\s)--(?=[A-Z0-9\[{(])")
_ROMAN = re.compile(r"^[ivxlc]+[.,;:]?$")
_CITE_ABBR = {"Sir", "Sir.", "Mrs.", "Mr.", "Dr.", "St.", "Bp.", "Abp.", "Rev.", "Lord", "Lady", "Prof.",
              "Dean", "Bishop", "Archbp.", "Card.", "Gov.", "Gen.", "Pres."}


def _citation_end(tokens: list[str]) -> int:
    """How many tokens of `tokens` (starting after "--") make up an author citation."""
    n = 0
    while n < len(tokens):
        t = tokens[n]
        if n == 0:
            n += 1
            continue
        prev = tokens[n - 1]
        if t[0].isdigit() or _ROMAN.match(t) or t in ("&", "and", "of", "de", "von", "van", "du"):
            n += 1
            continue
        if t[0] == "(" and not t.endswith(")"):
            break
        if t[0].isupper() or t[0] == "(":
            nxt = tokens[n + 1] if n + 1 < len(tokens) else ""
            starts_sentence = prev.endswith(".") and len(prev.rstrip(".")) > 2 and prev not in _CITE_ABBR
            if starts_sentence and not t.endswith(".") and (nxt[:1].islower() or nxt[:1] in '{"'):
                break
            if starts_sentence and t in ("See", "The", "A", "An", "It", "This", "In", "Cf.", "Also"):
                break
            n += 1
            continue
        break
    return n


def strip_citations(text: str) -> str:
    """Remove "--Author" citations ("--Shak.", "--Sir T. Browne.", "--Rom. iv. 22.") wherever they
    stand; the text after a citation is kept."""
    out = []
    pos = 0
    while True:
        m = _CITE_START.search(text, pos)
        if not m:
            out.append(text[pos:])
            break
        out.append(text[pos:m.start()])
        rest = text[m.end():]
        tokens = rest.split()
        k = _citation_end(tokens)
        # advance past k tokens in `rest`
        j = 0
        for t in tokens[:k]:
            j = rest.index(t, j) + len(t)
        out.append(" ")
        pos = m.end() + j
    return "".join(out)


_QUOTE_CITED = re.compile(r'(?:[;,]?\s*\bas,\s*)?"([^"]{2,}?)"\s*(?=--[A-Z0-9\[{(])')
_XREF = re.compile(r"(?:^|(?<=[.;]))\s*(?:--\s*)?(?:[Ss]ee(?: also| under| Illust\.(?: of| under)?)?|Same as|"
                   r"[Oo]pposite of|[Aa]ntonym of|Also [Ss]ee:?|Cf\.|Compare|[Ww]ritten also|[Aa]lso written|"
                   r"[Cc]alled also|[Aa]lso called|[Ss]ometimes written|[Ss]ynonym of|Var\. of|Alt\. of|"
                   r"[Oo]r ?\{)[^.;]*\{[^.;]*?(?:[.;]|$)")
_XREF_PLAIN = re.compile(r"(?:^|(?<=[.;]))\s*(?:See|Same as|Contrasted (?:with|to)|Also [Ss]ee:?|"
                         r"(?:Obs\.\s*)?[Pp]l\. of|Variant of|Alt\. of|Plural of|(?:Archaic|Variant|Obsolete) spelling of)"
                         r"\s+[^.;]{0,60}?(?:[.;]|$)")
_INLINE_TAG = re.compile(r"\[[^\[\]]*(?:Webster|WordNet|PJC)[^\[\]]*\]")
_PRON = re.compile(r"\([^()\s]*[*\"`][^()\s]*\)[.,]?")
_FIELD_LABEL = re.compile(r"\((?:[A-Z][a-z]*\.(?:\s*(?:,|&|and)\s*|\s+)?)+\)")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_LEAD_LABELS = re.compile(r"^(?:\d+\.\s*|\d+\s+(?=[a-z])|\([a-z]\)\s*|pl\.\s*"         # 1. / (a) / pl.
                          r"|\((?:[A-Z][^()]{0,40}|[a-z]{2,12}\.?)\)\s*)+")            # (Zool.) (Logic)
_PHRASE_HEAD = re.compile(r"^\{[^{}]*\}(?:\s*(?:,|or|and|,\s*or)?\s*\{[^{}]*\})*"           # {Bell cage}, or {..}
                          r"\s*(?:\([^()]*\)\s*)*(?:\[[^\[\]]*\]\s*)*[,.]?\s*")            # (Arch.) [R.],
_DERIVED = re.compile(r"\s--\s*(?:\{.*|[,.]?\s*$)")
_PLACEHOLDER = re.compile(r"(?:^|[\s(\[,;])\?(?:[\s,.;)]|$)|\w\?\w")
_JUNK = re.compile(r"[\\{}\[\]<>|]|https?:|www\.|\.html?\b|\.com\b|\w\*\w|\w\"\w")


def _tidy(text: str) -> str:
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\b(\w+) '(ll|re|ve|d|m|s)\b", r"\1'\2", text)          # "you 're" -> "you're"
    text = re.sub(r"\(\s*[,;]?\s*\)", "", text)
    text = re.sub(r"\s+([,.;:!?)])", r"\1", text)
    text = re.sub(r"([(])\s+", r"\1", text)
    text = re.sub(r"([;,:])(?:\s*[;,:])+", r"\1", text)
    text = re.sub(r"\s--\s*$", "", text)
    text = re.sub(r"(?:[.,;]*,\s*\d+|\s+(?:AS|PJC|RDH)|[.:;]?\s+(?:Specifically|Especially|Hence))$", "",
                  text.strip(" ;,:-"))
    text = text.strip(" ;,:-")
    return re.sub(r"(?<!\.)\.\.$", ".", text)


def _ok(text: str) -> bool:
    """Whether a cleaned passage is plain text: no markup left, no "?" standing for a lost letter."""
    return (bool(text) and not _JUNK.search(text) and not _PLACEHOLDER.search(text)
            and re.search(r"[A-Za-z]", text) is not None)


def clean_definition(text: str) -> tuple[str, list[str], list[str]]:
    """(definition, usage examples, cited quotations) from one sense's joined text."""
    text = _PRON.sub(" ", text)
    text = convert_entities(text)
    text = re.sub(r"\s+", " ", text).strip()
    text = _DERIVED.sub("", text)
    quotes = [q for q in (_clean_quote_text(m.group(1)) for m in _QUOTE_CITED.finditer(text)) if q]
    text = _QUOTE_CITED.sub(" ", text)
    text = strip_citations(text)
    text = _PHRASE_HEAD.sub("", text)
    text = _LEAD_LABELS.sub("", text)
    while _BRACKETS.search(text):
        text = _BRACKETS.sub(" ", text)
    for _ in range(3):
        text = _XREF_PLAIN.sub("", _XREF.sub("", text))
    text = _FIELD_LABEL.sub(" ", text)
    text = _LEAD_LABELS.sub("", text.strip())
    examples = []
    m = re.search(r"(?:^|[;,.]\s*)\bas,\s+(.*)$", text)
    if m:
        text = text[:m.start()]
        ex = _tidy(m.group(1).replace("{", "").replace("}", ""))
        if ex:
            examples.append(ex)
    text = _tidy(text.replace("{", "").replace("}", ""))
    return text, examples, quotes


def _clean_quote_text(text: str) -> str:
    text = convert_entities(text)
    text = re.sub(r"\[([^\[\]]*)\]", r"\1", text)       # editorial insertions: [He], [the king]
    text = text.replace("{", "").replace("}", "")
    text = _tidy(text)
    if text.startswith('"') and text.endswith('"') and text.count('"') == 2:
        text = text[1:-1].strip()
    return text


def clean_quotation(lines: list[str]) -> str:
    """A block quotation: lines joined, the right-aligned citation and its continuation removed."""
    kept = []
    cited = False
    for line in lines:
        indent = len(line) - len(line.lstrip(" "))
        if cited and indent >= 30:
            continue                                            # "North." under "--Sir T."
        m = re.search(r"(?:\s{2,}|\s|^)--(?=[A-Z0-9\[{(])", line)
        if m:
            cited = True
            line = line[:m.start()]
        kept.append(line.strip())
    text = " ".join(kept)
    m = _INLINE_TAG.search(text) or re.search(r"\s--\s*\{", text)
    return _clean_quote_text(text[:m.start()] if m else text)


def clean_note(text: str) -> str:
    """A Note:/Usage: paragraph: label, leading word list ("{Abandon}, {Desert}, {Forsake}."),
    citations and markup removed."""
    text = convert_entities(re.sub(r"\s+", " ", text).strip())
    text = re.sub(r"^(?:Note|Usage)\s*:\s*", "", text)
    if re.match(r"^\[?(?:Narrower|Broader) terms", text):
        return ""
    while True:                                       # "{Abandon}, {Desert}, {Forsake}." / "See {X}. --"
        text = re.sub(r"^--\s*", "", _XREF.sub("", text, count=1).lstrip())
        m = re.match(r"^((?:To\s+)?[^.]{0,200}?)\.\s+(?=[A-Z])", text)
        if not (m and "{" in m.group(1) and all(len(w.split()) <= 4 for w in re.split(r"[,;]", m.group(1)))):
            break
        text = text[m.end():]
    text = _INLINE_TAG.sub(" ", text)
    text = _DERIVED.sub("", text)
    text = strip_citations(text)
    text = _FIELD_LABEL.sub(" ", text)
    while _BRACKETS.search(text):
        text = _BRACKETS.sub(" ", text)
    return _tidy(text.replace("{", "").replace("}", ""))


_POS_SPLIT = re.compile(r"\s--\s(?=(?:n|a|adj|adv|v\. ?[ti]|pron|prep|interj)\.\s+[A-Z(])"   # "-- n. A beast"
                        r"|(?<=[.;])\s+(?=Hence[,:]\s)")                                  # ". Hence: ..."


def _senses(lines: list[str]) -> list[str]:
    """A definition block's lines grouped into senses: "(a)", "(b)" sub-senses start new ones, and
    so does a run-in sense of another part of speech ("... -- n. A wild beast")."""
    out: list[list[str]] = []
    for line in lines:
        if not out or re.match(r"^\s*\([a-z]\)\s", line):
            out.append([])
        out[-1].append(line.strip())
    senses = []
    for s in out:
        parts = _POS_SPLIT.split(" ".join(s))
        senses += [parts[0]] + [re.sub(r"^(?:Hence[,:]|\S+\.)\s+", "", p) for p in parts[1:]]
    return senses


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def parse_entry(text: str) -> Iterator[tuple[str, str]]:
    """(kind, passage) pairs of one raw dictd entry."""
    for tag, lines in blocks(text):
        joined = " ".join(line.strip() for line in lines)
        prefix = "wordnet_" if "WordNet" in tag or "[WordNet sense" in joined else ""
        if _indent(lines[0]) >= 8:
            # a quotation ends where a line falls back to a definition's indent ("(c) A drove ...")
            cut = next((i for i in range(1, len(lines)) if _indent(lines[i]) < 8), len(lines))
            q = clean_quotation(lines[:cut])
            if _ok(q):
                yield "quotation", q
            lines = lines[cut:]
            if not lines:
                continue
        head = lines[0].lstrip()
        if head.startswith(("Syn:", "Ant:")):
            continue
        if head.startswith(("Note:", "Usage:")):
            n = clean_note(" ".join(line.strip() for line in lines))
            if _ok(n):
                yield "note", n
            continue
        for sense in _senses(lines):
            d, examples, quotes = clean_definition(sense)
            if _ok(d):
                yield prefix + "definition", d
            for e in examples:
                if _ok(e):
                    yield prefix + "example", e
            for q in quotes:
                if _ok(q):
                    yield "quotation", q


def read(root: Path | None = None) -> Iterator[tuple[str, str]]:
    """(kind, passage) for every definition, example, note and quotation of GCIDE."""
    for text in entries(root):
        yield from parse_entry(text)

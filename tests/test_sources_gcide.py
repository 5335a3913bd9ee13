"""GCIDE reader: dictd markup, headers, citations and cross-references removed; WordNet blocks labelled."""
import gzip
import itertools

import pytest

from tools.sources import gcide

WHOSE = """Whose \\Whose\\ (h[=oo]z), pron. [OE. whos, whas, AS. hw[ae]s,
   gen. of hw[=a]. See {Who}.]
   The possessive case of who or which. See {Who}, and {Which}.
   [1913 Webster]

         Whose daughter art thou? tell me, I pray thee. --Gen.
                                                  xxiv. 23.
   [1913 Webster]

         That was the full time they used to wear blacks for
         the death of their fathers.              --Sir T.
                                                  North.
   [1913 Webster]
"""

RETREAT = """Retreat \\Re*treat"\\, v. i. [imp. & p. p. {Retreated}; p. pr. &
   vb. n. {Retreating}.]
   1. To make a retreat; to retire from any position or place; to
      withdraw; as, the defeated army retreated from the field.
      [1913 Webster]

   2. (Zool.) To go back; -- said of a tide. [Obs.] "The sea
      retreated from the shore." --Milton. -- {Re*treat"er}, n.
      [1913 Webster]

   {Retreating sea}, waves drawing back from the beach. --Ham. Nav.
      Encyc.
      [1913 Webster]

   Note: Retreat is much used of armies; it implies an orderly
         withdrawal. --Wilhelm.
         [1913 Webster]

   Syn: Retire; withdraw.
        [1913 Webster]
"""

WORDNET = """officialdom \\officialdom\\ n.
   The body of all people elected or appointed to administer a
   government, taken collectively; as, officialdom resists reform.

   Syn: government officials.
        [WordNet 1.5]
"""


def test_convert_entities_maps_accents_ligatures_and_greek_but_leaves_labels():
    assert gcide.convert_entities("immat['e]rial a[\"e]roplane Octodontid[ae] [alpha] [Obs.]") == \
        "immatérial aëroplane Octodontidae α [Obs.]"


def test_strip_citations_keeps_text_after_an_author():
    assert gcide.strip_citations("A fishery. --Spenser.").strip() == "A fishery."
    got = gcide.strip_citations('"The attempt confounds us." --Shak. An endeavor is a continued attempt.')
    assert " ".join(got.split()) == '"The attempt confounds us." An endeavor is a continued attempt.'
    assert gcide.strip_citations("It was imputed to him. --Rom. iv. 22.").strip() == "It was imputed to him."
    assert gcide.strip_citations("Go astern. --Sir T. Browne.").strip() == "Go astern."


def test_header_over_several_lines_is_removed():
    got = list(gcide.parse_entry(WHOSE))
    assert got[0] == ("definition", "The possessive case of who or which.")


def test_block_quotations_lose_right_aligned_citations_and_their_continuations():
    got = [p for k, p in gcide.parse_entry(WHOSE) if k == "quotation"]
    assert got == ["Whose daughter art thou? tell me, I pray thee.",
                   "That was the full time they used to wear blacks for the death of their fathers."]


def test_senses_examples_inline_quotations_notes_and_phrases():
    got = list(gcide.parse_entry(RETREAT))
    assert ("definition", "To make a retreat; to retire from any position or place; to withdraw") in got
    assert ("example", "the defeated army retreated from the field.") in got
    assert ("definition", "To go back; -- said of a tide.") in got
    assert ("quotation", "The sea retreated from the shore.") in got
    assert ("definition", "waves drawing back from the beach.") in got
    assert ("note", "Retreat is much used of armies; it implies an orderly withdrawal.") in got
    assert not any("Retire; withdraw" in p or "{" in p or "--" in p and "said of" not in p for _, p in got)


def test_wordnet_blocks_get_their_own_kind():
    got = list(gcide.parse_entry(WORDNET))
    assert got == [("wordnet_definition",
                    "The body of all people elected or appointed to administer a government, taken collectively"),
                   ("wordnet_example", "officialdom resists reform.")]


def test_cross_references_and_placeholders_are_dropped():
    entry = "Wier \\Wier\\, n.\n   Same as {Weir}.\n   [1913 Webster]\n\n" \
            "Stroll \\Stroll\\, n.\n   Icel. strj?ka to stroke.\n   [1913 Webster]\n"
    assert list(gcide.parse_entry(entry)) == []


def test_trim_leak_removes_the_next_headword_left_at_the_end():
    assert gcide.trim_leak("   A juggler. --Milton. Jonquil\n", "Jonquil") == "   A juggler. --Milton.\n"
    assert gcide.trim_leak("   [1913 Webster] Aerophobia\n", "aerophobia") == "   [1913 Webster]\n"
    assert gcide.trim_leak("   A juggler.\n", "Jonquil") == "   A juggler.\n"


def _write_dictd(folder, entries):
    """A gcide.index / gcide.dict.dz pair as dictfmt writes them (offsets in dictd base64)."""
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
    (folder / "gcide.index").write_text("\n".join(sorted(index)) + "\n")
    with gzip.open(folder / "gcide.dict.dz", "wb") as f:
        f.write(body)


def test_read_cuts_entries_at_index_offsets(tmp_path):
    _write_dictd(tmp_path, [("00-database-short", "\n00-database-short\n   GCIDE\n"), ("whose", WHOSE),
                            ("officialdom", WORDNET)])
    kinds = [k for k, _ in gcide.read(tmp_path)]
    assert kinds == ["definition", "quotation", "quotation", "wordnet_definition", "wordnet_example"]


def test_read_names_the_install_command_when_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dict-gcide"):
        list(gcide.read(tmp_path))


@pytest.mark.skipif(not (gcide.DEFAULT_ROOT / "gcide.index").exists(), reason="dict-gcide not installed")
def test_installed_gcide_smoke():
    got = {k for k, _ in itertools.islice(gcide.read(), 20000)}       # letter A and part of B
    assert {"definition", "quotation", "example", "note", "wordnet_definition"} <= got

"""Corpus: splits, the open-domain build steps, and resumable embedding."""
import gzip
import json

import numpy as np
import pytest

from decoders import corpus, encoder
from decoders.corpus import SPLITS, embed_split, load_embedded, load_rows, load_split, stats, text_hash
from decoders.encoder import encode
from tools.corpus_build import NearDuplicates, choose_eval, dedup, normalise, reject_reason
from tools.sources.wordnet import parse_gloss, split_of_all


def test_wordnet_splits_are_unchanged_disjoint_and_sized():
    train, dev, test = (set(t.lower() for t in load_split(s, sources=["wordnet"])) for s in ("train", "dev", "test"))
    assert len(dev) == 2000 and len(test) == 2000 and len(train) == 164_573
    assert not (train & dev) and not (train & test) and not (dev & test)


def test_every_split_is_disjoint_from_every_other():
    seen = {}
    for split in SPLITS:
        for t in load_split(split):
            key = normalise(t)
            assert seen.setdefault(key, split) == split, f"{t!r} is in {seen[key]} and {split}"


def test_open_splits_are_stratified_when_built():
    if not corpus.OPEN_PATH.exists():
        pytest.skip("assets/corpus/open.tsv.gz not built")
    s = stats()
    assert s["totals"]["open-test"] == 2000 and s["totals"]["open-dev"] == 2000
    open_sources = [src for src in s["sources"] if src != "wordnet"]
    for src in open_sources:
        assert s["sources"][src]["open-test"] >= 100 and s["sources"][src]["open-dev"] >= 100, src
    assert max(s["train_share"].values()) <= 0.40 + 1e-3


def test_wordnet_usage_examples_come_before_glosses():
    kinds = [r.kind for r in load_rows("test", sources=["wordnet"])]
    assert kinds == sorted(kinds, key=lambda k: k != "example")
    assert kinds[:500].count("example") == 486   # "test[:500]" = the 486 usage examples + 14 glosses


def test_split_is_a_function_of_the_text():
    texts = [f"sentence number {i}" for i in range(5000)]
    a = dict(zip(texts, split_of_all(texts)))
    b = dict(zip(texts[::-1], split_of_all(texts[::-1])))
    assert a == b


def test_gloss_parsing_strips_attributions_and_short_parts():
    gloss = 'a domestic animal; "the dog barked all night"; "he was a good man"- Shakespeare; cat'
    assert parse_gloss(gloss) == [("gloss", "a domestic animal"), ("example", "the dog barked all night"),
                                  ("example", "he was a good man")]


@pytest.mark.parametrize("text, reason", [
    ("Too short.", "short"),
    (" ".join(["word"] * 41), "long"),
    ("See https://example.org for the rest of it.", "url_or_mail"),
    ("Write to jane@example.org about the meeting.", "url_or_mail"),
    ("Call os.path.join() with the two parts.", "code"),
    ("The value of x_max is set here.", "code"),
    ("1991 704,398,609 691,344,437 tons 12.5%", "not_letters"),
    ("THE END OF THE BOOK", "no_lowercase"),
])
def test_reject_reason_names_the_problem(text, reason):
    assert reject_reason(text) == reason


@pytest.mark.parametrize("text", ['"I\'m afraid not," she said.', "That will be $1.80, said the man.",
                                  "The Navy is an important arm of the national defense."])
def test_reject_reason_keeps_ordinary_sentences(text):
    assert reject_reason(text) is None


def test_dedup_drops_case_and_punctuation_variants_and_keeps_the_first():
    items = [("a", "k", "The dog barked."), ("b", "k", "the dog barked"), ("b", "k", "The cat sat.")]
    kept, dropped = dedup(items, seen={normalise("the CAT sat")})
    assert kept == [("a", "k", "The dog barked.")] and dropped == {"b": 2}


def test_near_duplicates_of_held_out_text_are_found():
    near = NearDuplicates(["a mechanical device that is used to lift heavy loads",
                           "the act of running away quickly from danger"])
    assert near.match("A mechanical device that is used to lift heavy loads.")          # same words
    assert near.match("a mechanical device that is used to lift very heavy loads")      # Jaccard >= 0.8
    assert near.match("Crane: a mechanical device that is used to lift heavy loads; see derrick")  # contains
    assert not near.match("a device used for cooking food quickly")
    assert not near.match("the dog ran away from the noisy children")


def test_eval_sets_are_stratified_by_source_and_a_function_of_the_text():
    pool = [("big", "k", f"big sentence {i}") for i in range(30_000)] + \
           [("small", "k", f"small sentence {i}") for i in range(2500)]
    a = choose_eval(pool)
    counts = {(pool[i][0], s): 0 for i, s in a.items()}
    for i, s in a.items():
        counts[pool[i][0], s] += 1
    assert counts["small", "open-test"] == counts["small", "open-dev"] == 1000
    assert counts["big", "open-test"] == counts["big", "open-dev"] == 1000
    b = choose_eval(pool[::-1])
    assert {pool[i][2]: s for i, s in a.items()} == {pool[::-1][i][2]: s for i, s in b.items()}


def test_embedding_resumes_where_it_stopped_and_matches_the_encoder(tmp_path):
    texts = [f"the {w} is on the table" for w in ("cup", "book", "cat", "lamp", "key", "pen", "hat")]
    embed_split("t", tmp_path, dtype="float32", chunk=3, max_rows=4, texts=texts, log=lambda m: None)
    assert np.load(tmp_path / "emb_t.done.npy").sum() == 4
    embed_split("t", tmp_path, dtype="float32", chunk=3, texts=texts, log=lambda m: None)
    got = np.load(tmp_path / "emb_t.npy").astype(np.float32)
    want = encode(texts)
    assert np.allclose((got * want).sum(1), 1.0, atol=2e-3)
    with pytest.raises(ValueError, match="other texts"):
        embed_split("t", tmp_path, texts=texts[::-1], log=lambda m: None)


def test_text_hash_ignores_case():
    assert text_hash("The Dog") == text_hash("the dog")


def test_loading_unembedded_split_names_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m decoders.corpus embed --split dev"):
        load_embedded("dev", data_dir=tmp_path)


def test_committed_corpus_files_are_gzip_tsv_with_header():
    with gzip.open(corpus.CORPUS_PATH, "rt") as f:
        assert f.readline().rstrip("\n") == "split\tsource\ttext"


def test_balanced_order_takes_the_sources_in_turn():
    from decoders.corpus import balanced_order
    sources = ["a", "a", "a", "a", "b", "c", "c"]
    order = balanced_order(sources)
    assert sorted(order.tolist()) == list(range(len(sources)))
    assert [sources[i] for i in order[:3]] == ["a", "b", "c"]       # one of each first
    assert order.tolist() == [0, 4, 5, 1, 6, 2, 3]                  # corpus order within a source


def test_speed_command_reports_sentences_per_second_per_batch_size(capsys):
    corpus.main(["speed", "--split", "dev", "--n", "4", "--batch-sizes", "2,4"])
    out = json.loads(capsys.readouterr().out)
    assert [(r["batch_size"], r["n"], r["dtype"]) for r in out["rows"]] == [(2, 4, "float32"), (4, 4, "float32")]
    assert all(r["sentences_per_s"] > 0 for r in out["rows"]) and out["split"] == "dev"


def test_default_dtype_is_bfloat16_only_where_the_cpu_has_it(monkeypatch):
    amd = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
    xeon = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
    assert not encoder.cpu_has_bf16(amd) and encoder.cpu_has_bf16(xeon)
    assert not encoder.cpu_has_bf16("")
    monkeypatch.setattr(encoder, "cpu_has_bf16", lambda: False)
    assert encoder.default_dtype("cpu") == "float32" and encoder.default_dtype("cuda") == "bfloat16"
    monkeypatch.setattr(encoder, "cpu_has_bf16", lambda: True)
    assert encoder.default_dtype("cpu") == "bfloat16"

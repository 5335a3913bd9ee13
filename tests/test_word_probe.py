"""Word probe (decoders/word_probe.py): training on a toy corpus, checkpoint round trip, and the
hybrid's word edits (decoders/hybrid.py) steered by it."""
import itertools
import random

import numpy as np
import pytest
import torch

from decoders import word_probe
from decoders.base import Sampling
from decoders.hybrid import HybridConfig, HybridDecoder, word_edits
from decoders.word_probe import WordProbe, WordVocab
from training.word_probe import ProbeTrainConfig, build_vocab, train
from tests.test_hybrid import ArgmaxWord, Fixed, Same, WORDS, stub_encode, target


def test_words_are_lower_cased_runs_of_letters_and_digits():
    assert word_probe.words("Don't stop, 2 Dogs!") == ["don't", "stop", "2", "dogs"]


def test_vocabulary_is_the_words_in_most_texts_and_refuses_repeats():
    vocab = build_vocab(["a b", "a c", "a b d"], 2)
    assert vocab.vocab == ["a", "b"] and vocab.ids("B a x a") == [1, 0]
    with pytest.raises(ValueError, match="repeated"):
        WordVocab(["a", "a"])


@pytest.fixture(scope="module")
def toy_probe(tmp_path_factory):
    """A probe trained on every 1-3 word combination of the stub's six words, embedded by the stub encoder."""
    texts = [" ".join(c) for k in (1, 2, 3) for c in itertools.combinations(WORDS, k)]
    emb = stub_encode(texts)
    dev = {"dev": (texts[:10], torch.from_numpy(emb[:10]))}
    out = tmp_path_factory.mktemp("probe")
    torch.manual_seed(0)
    cfg = ProbeTrainConfig(out=str(out), vocab=6, hidden=16, epochs=300, batch_size=41, lr=3e-2, eval_every=100, threads=1)
    record = train(cfg, texts, emb, dev, quiet=True)
    return out, record


def test_the_probe_learns_which_words_an_embedding_holds_and_loads_back(toy_probe):
    out, record = toy_probe
    assert record["dev"]["f1"] > 0.95, record
    probe = word_probe.load("cpu", out)
    p = probe.probs(target("beta epsilon"))[0]
    assert {probe.vocab.vocab[j] for j in np.flatnonzero(p > 0.5)} == {"beta", "epsilon"}
    card = (out / "MODEL_CARD.md").read_text()
    assert "## Learning curve" in card and "| 300 |" in card and "dev: precision" in card   # the last step, its metrics
    with pytest.raises(ValueError, match=r"\[N, 768\]"):
        probe.probs(np.zeros((2, 5)))


def _is_word_edit(o, text, missing, unlikely):
    w, ow = text.split(), o.split()
    ins = any(ow == w[:i] + [m] + w[i:] for i in range(len(w) + 1) for m in missing)
    dele = any(ow == w[:i] + w[i + 1:] for i in unlikely)
    sub = any(ow == w[:i] + [m] + w[i + 1:] for i in unlikely for m in missing)
    return ins or dele or sub


def test_word_edits_insert_likely_missing_words_and_remove_unlikely_ones():
    vocab = WordVocab(WORDS)
    p = np.array([0.9, 0.01, 0.8, 0.7, 0.3, 0.02])   # alpha, gamma, delta likely; beta, zeta not
    text = "alpha beta zeta delta Xylo"               # Xylo: not in the vocabulary, never removed
    out = word_edits(text, p, vocab, random.Random(0), 10, top=2)
    assert len(out) == 10 == len(set(out)) and text not in out
    # the 2 likeliest missing words are gamma, epsilon; the 3 least likely present: beta, zeta, delta (indices 1, 2, 3)
    assert all(_is_word_edit(o, text, ["gamma", "epsilon"], [1, 2, 3]) for o in out), out
    assert all("Xylo" in o for o in out)
    assert out == word_edits(text, p, vocab, random.Random(0), 10, top=2)
    assert set(word_edits("", p, vocab, random.Random(0), 3, top=2)) == {"alpha", "gamma"}   # lacks every word


class StubProbe:
    """p(word | e): the stub encoder's embedding is the words' basis vectors, so p = that weight."""
    vocab = WordVocab(WORDS)
    num_parameters = 7

    def probs(self, emb):
        return np.clip(np.asarray(emb)[:, :6] * 2, 0, 1)


def test_the_probe_points_the_search_at_the_word_it_misses():
    """Pool "alpha beta", target "alpha beta gamma": a corrector that proposes nothing new and no random
    edits leave the search at cos 0.816; one word edit inserts gamma."""
    e = target("alpha beta gamma")
    cfg = HybridConfig(budget_ms=0, steps=2, bank_candidates=1, edits=0, word_edits=4)
    without = HybridDecoder(Fixed(["alpha beta"]), Fixed(["alpha beta"]), Same(), cfg, encode=stub_encode)
    with_probe = HybridDecoder(Fixed(["alpha beta"]), Fixed(["alpha beta"]), Same(), cfg, encode=stub_encode,
                               probe=StubProbe())
    assert without.decode(e, Sampling())[0][0].score == pytest.approx(np.sqrt(2 / 3), abs=1e-3)
    found = with_probe.decode(e, Sampling())[0][0]
    assert set(found.text.split()) == {"alpha", "beta", "gamma"} and found.score > 0.99
    assert with_probe.configured(word_edits=0).decode(e, Sampling())[0][0].score < 0.9
    assert with_probe.num_parameters == without.num_parameters + 7

"""Screen (decoders/screen.py): the ridge fit, checkpoint round trip, picking the k nearest texts,
and the hybrid encoding only the screen's picks (decoders/hybrid.py)."""
import itertools

import numpy as np
import pytest

from decoders import screen
from decoders.base import Sampling
from decoders.hybrid import HybridConfig, HybridDecoder
from tests.test_hybrid import Fixed, Same, WORDS, stub_encode, target
from tests.test_word_probe import StubProbe
from training.screen import ScreenTrainConfig, fit, fit_map


def small_encode(texts):
    """A stand-in for MiniLM: the stub encoder's six word dimensions, as a 6-d unit vector."""
    m = stub_encode(texts)[:, :6] + 1e-3
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def test_ridge_fit_recovers_a_linear_map_and_its_bias():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(500, 5))
    w, b = rng.normal(size=(5, 7)), rng.normal(size=7)
    got_w, got_b = fit_map(m, m @ w + b, ridge=1e-6)
    assert np.abs(got_w - w).max() < 1e-5 and np.abs(got_b - b).max() < 1e-5
    shrunk, _ = fit_map(m, m @ w + b, ridge=1e4)
    assert np.linalg.norm(shrunk) < 0.5 * np.linalg.norm(w)   # the penalty shrinks W


@pytest.fixture(scope="module")
def toy_screen(tmp_path_factory):
    texts = [" ".join(c) for k in (1, 2, 3) for c in itertools.combinations(WORDS, k)]
    out = tmp_path_factory.mktemp("screen")
    cfg = ScreenTrainConfig(out=str(out), rows=len(texts), ridge=1e-4, eval_n=10)
    dev = {"dev": (texts[:10], stub_encode(texts[:10]))}
    record = fit(cfg, texts, stub_encode(texts), dev, embed=small_encode, quiet=True)
    return out, record


def test_a_fitted_screen_places_texts_near_their_embedding_and_loads_back(toy_screen):
    out, record = toy_screen
    assert record["dev"]["cos"] > 0.99 and record["dev"]["top1"] == 1.0, record
    s = screen.load("cpu", out)
    s._encode = small_encode   # the toy was fitted on the stand-in, not on MiniLM
    est = s.embed(["alpha beta", "gamma"])
    assert est.shape == (2, 768) and np.allclose(np.linalg.norm(est, axis=1), 1, atol=1e-5)
    assert float(est[0] @ target("alpha beta")[0]) > 0.99
    card = (out / "MODEL_CARD.md").read_text()
    assert "| dev | 10 |" in card and "ridge" in card
    with pytest.raises(ValueError, match=r"\[N, 6\]"):
        screen.Screen(s.model, encode_texts=lambda t: np.zeros((len(t), 5))).embed(["alpha"])


def test_pick_keeps_the_k_texts_the_screen_puts_nearest_each_target(toy_screen):
    s = screen.load("cpu", toy_screen[0])
    calls = []
    s._encode = lambda texts: calls.append(len(texts)) or small_encode(texts)
    rows = [["zeta", "alpha beta", "alpha", "gamma"], ["delta", "beta"]]
    got = s.pick(np.concatenate([target("alpha beta"), target("beta")]), rows, 2)
    assert got[0] == ["alpha beta", "alpha"] and got[1] == ["delta", "beta"]   # a row within k keeps its order
    assert calls == [4]   # one encoder call, for the rows over k only


class CountingEncoder:
    def __init__(self):
        self.texts = []

    def __call__(self, texts):
        self.texts.append(list(texts))
        return stub_encode(texts)


def test_the_hybrid_encodes_only_the_screens_best_proposals(toy_screen):
    """Word edits propose up to 8 texts a step; with screen = 2 mpnet sees at most 2 new texts per
    step, and the one edit that completes the sentence is among them."""
    s = screen.load("cpu", toy_screen[0])
    s._encode = small_encode
    e = target("alpha beta gamma")
    cfg = HybridConfig(budget_ms=0, steps=2, bank_candidates=1, edits=0, word_edits=8, beam=1, screen=0)
    enc = CountingEncoder()
    dec = HybridDecoder(Fixed(["alpha beta"]), Fixed(["alpha beta"]), Same(), cfg, encode=enc, probe=StubProbe(),
                        screen=s)
    found = dec.configured(screen=2).decode(e, Sampling())[0][0]
    assert set(found.text.split()) == {"alpha", "beta", "gamma"} and found.score > 0.99
    assert max(len(call) for call in enc.texts[1:]) <= 2, enc.texts
    enc.texts.clear()
    dec.decode(e, Sampling())   # screen = 0: every new proposal is encoded
    assert max(len(call) for call in enc.texts[1:]) > 2
    assert dec.configured(screen=2).num_parameters == dec.num_parameters + s.num_parameters

"""Corrector pairs (training/corrector_pairs.py) and training (training/corrector.py) on a tiny fake corpus."""
import json

import numpy as np
import pytest
import torch

from decoders import corrector
from training.corrector import CorrectorTrainConfig, build_parser, learning_curve, load_pairs, train, warm_start
from training.corrector_pairs import (PairsDir, encode_source, nearest_other, text_key, write_bank,
                                      write_corrected, write_decoded)

WORDS = "cat dog bird fish tree rock lake hill rain snow wind sun moon star road town".split()


def fake_corpus(n=40, seed=0):
    """n short texts (two made to be the same sentence up to case) and random unit embeddings,
    the first n - 4 of them 'embedded'."""
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS, 4)) for _ in range(n)]
    texts[1] = texts[0].upper()
    emb = rng.standard_normal((n, 768)).astype(np.float32)
    emb[1] = emb[0] + 0.01 * emb[1]           # the duplicate is the nearest row of row 0
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return texts, emb.astype(np.float16), np.arange(n - 4)


def stub_encode(calls):
    def encode(texts):
        calls.append(list(texts))
        v = np.stack([np.random.default_rng(abs(hash(t)) % 2**32).standard_normal(768) for t in texts])
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
    return encode


def test_nearest_other_is_brute_force_without_rows_of_the_same_text():
    texts, emb, embedded = fake_corpus()
    keys = [text_key(t) for t in texts]
    bank = torch.as_tensor(emb[embedded].astype(np.float32))
    q = np.arange(10)
    got = nearest_other(emb[q].astype(np.float32), [keys[i] for i in q], bank, embedded, keys, k=3, chunk=4)
    sims = emb[q].astype(np.float32) @ emb[embedded].astype(np.float32).T
    for i, row in zip(q, got):
        order = [int(embedded[j]) for j in np.argsort(-sims[i]) if keys[embedded[j]] != keys[i]][:3]
        assert row.tolist() == order
    assert 0 not in got[1] and 1 not in got[0]             # the same sentence in other case is skipped


def test_bank_pairs_take_the_neighbours_embeddings_from_the_corpus(tmp_path):
    texts, emb, embedded = fake_corpus()
    pairs = PairsDir(tmp_path)
    targets = pairs.targets(texts, embedded, 12, seed=0)
    assert len(set(targets)) == 12 and set(targets) <= set(embedded)
    write_bank(pairs, targets, texts, emb, embedded, k=2, device="cpu", chunk=5, log=lambda m: None)
    lines = pairs.lines("bank")
    vecs, done = pairs.embeddings("bank")
    assert len(lines) == 24 and done.all()
    for (row, text), v in zip(lines, vecs):
        assert text_key(text) != text_key(texts[row]) and np.array_equal(v, emb[texts.index(text)])
    # a second run finds everything done; a different --rows is refused
    write_bank(pairs, targets, texts, emb, embedded, k=2, device="cpu", chunk=5, log=lambda m: None)
    assert len(PairsDir(tmp_path).lines("bank")) == 24
    with pytest.raises(ValueError, match="holds 12 targets"):
        PairsDir(tmp_path).targets(texts, embedded, 13, seed=0)


def test_decoded_pairs_resume_after_a_stop_and_encode_each_new_text_once(tmp_path):
    texts, emb, embedded = fake_corpus()
    pairs = PairsDir(tmp_path)
    targets = pairs.targets(texts, embedded, 10, seed=1)
    seen = []

    def decode(x, chunk_index):
        seen.append(chunk_index)
        if chunk_index == 1 and len(seen) == 2:
            raise KeyboardInterrupt      # stopped in the middle of the second chunk
        return [["hello world", "hello world", texts[3]] for _ in x]   # a duplicate and a corpus row

    with pytest.raises(KeyboardInterrupt):
        write_decoded(pairs, "generative", targets, emb, decode, chunk=4, log=lambda m: None)
    pairs = PairsDir(tmp_path)
    assert pairs.source("generative")["items_done"] == 4
    write_decoded(pairs, "generative", targets, emb, decode, chunk=4, log=lambda m: None)
    assert seen == [0, 1, 1, 2]
    lines = pairs.lines("generative")
    assert len(lines) == 20 and [r for r, _ in lines[::2]] == [int(t) for t in targets]
    calls = []
    encode_source(pairs, "generative", texts, emb, embedded, stub_encode(calls), chunk=6, log=lambda m: None)
    vecs, done = pairs.embeddings("generative")
    assert done.all() and all(c == ["hello world"] for c in calls)   # the corpus row is not encoded
    assert np.array_equal(vecs[1], emb[3])
    encode_source(pairs, "generative", texts, emb, embedded, stub_encode(calls), chunk=6, log=lambda m: None)
    assert len(calls) == 4                                              # nothing left to encode


def test_second_round_corrects_a_sample_of_the_encoded_pairs(tmp_path):
    texts, emb, embedded = fake_corpus()
    pairs = PairsDir(tmp_path)
    targets = pairs.targets(texts, embedded, 10, seed=0)
    write_bank(pairs, targets, texts, emb, embedded, k=1, device="cpu", chunk=10, log=lambda m: None)
    got = []

    def propose(target, landed, hyps, chunk_index):
        got.append((target.shape, landed.shape, list(hyps)))
        return [[h + " again", h] for h in hyps]             # the unchanged hypothesis is not a new pair

    write_corrected(pairs, ["bank"], 6, 0, emb, propose, chunk=4, log=lambda m: None)
    lines = pairs.lines("corrector")
    assert len(lines) == 6 and all(t.endswith(" again") for _, t in lines)
    assert got[0][0] == (4, 768) and got[0][1] == (4, 768)
    bank = set(pairs.lines("bank"))
    assert all((r, t[:-len(" again")]) in bank for r, t in lines)    # paired with the same target row


def test_training_lowers_the_dev_loss_and_writes_a_loadable_checkpoint(tmp_path):
    texts, emb, embedded = fake_corpus(60)
    pairs = PairsDir(tmp_path / "pairs")
    targets = pairs.targets(texts, embedded, None, seed=0)
    write_bank(pairs, targets, texts, emb, embedded, k=2, device="cpu", chunk=64, log=lambda m: None)
    tiny = ["d_model=32", "n_layers=1", "n_heads=2", "ffn_hidden=64", "n_prefix=1", "proj_hidden=16",
            "hyp_len=10", "max_len=12"]
    args = build_parser().parse_args(["--pairs", str(tmp_path / "pairs"), "--out", str(tmp_path / "ckpt"),
                                      "--steps", "24", "--batch-size", "16", "--lr", "1e-2", "--warmup", "3",
                                      "--eval-every", "12", "--eval-n", "0", "--dev-frac", "0.2",
                                      "--device", "cpu", "--set", *tiny])
    from training.config import parse_key_values
    cfg = CorrectorTrainConfig(**{**vars(args), "model": parse_key_values(args.model)})
    torch.manual_seed(0)
    last = train(cfg, quiet=True, corpus=(texts, emb))
    log = [json.loads(line) for line in (tmp_path / "ckpt" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [0, 12, 24] and last["step"] == 24
    assert log[-1]["dev_loss"] < log[0]["dev_loss"] - 1.0 and log[0]["train_loss"] is None
    corr = corrector.load("cpu", tmp_path / "ckpt")
    assert corr.model.cfg.d_model == 32
    assert json.loads((tmp_path / "ckpt" / "train_args.json").read_text())["steps"] == 24
    # resume continues the step count
    cfg.resume, cfg.steps = True, 26
    assert train(cfg, quiet=True, corpus=(texts, emb))["step"] == 26
    curve = learning_curve(tmp_path / "ckpt" / "train_log.jsonl").splitlines()
    assert len(curve) == 2 + 4 and curve[2].startswith("| 0 | 0 |") and curve[-1].startswith("| 26 |")


def test_pairs_split_into_train_and_dev_by_target_row(tmp_path):
    texts, emb, embedded = fake_corpus(60)
    pairs = PairsDir(tmp_path)
    write_bank(pairs, pairs.targets(texts, embedded, None, 0), texts, emb, embedded, k=3, device="cpu",
               chunk=64, log=lambda m: None)
    from decoders.generative import BPETokenizer
    tok = BPETokenizer.load(corrector.TOKENIZER_DIR)
    data = load_pairs(tmp_path, ["bank", "ret"], texts, emb, tok, corrector.Config(), 0.3, 0, torch.device("cpu"),
                      log=lambda m: None)
    tgt = data.pair_target.numpy()
    assert len(data.train) + len(data.dev) == 3 * 56 and len(data.dev) > 0
    assert not set(tgt[data.train]) & set(tgt[data.dev])


def test_warm_start_copies_the_generative_decoder_where_shapes_match():
    from decoders import generative
    gen, _ = generative.load_model()
    model = corrector.CorrectorModel(corrector.Config())
    copied = warm_start(model, gen)
    assert "proj_target.prefix.weight" in copied and "blocks.2.ffn.down_proj.weight" in copied
    assert torch.equal(model.proj_target.layer_signal.weight, gen.bridge.layer_signal.weight)
    assert "proj_landed.inp.weight" not in copied

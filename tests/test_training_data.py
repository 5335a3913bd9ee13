"""Training data v2: row selection (data fraction, WordNet weight), distillation examples, epochs,
the PQ pack, model configs from files and fixed tokenizers, parameter fitting. Tiny data, CPU only."""
import json

import numpy as np
import pytest
import torch

from decoders.corpus import Row, load_rows
from decoders.generative import BPETokenizer, train_tokenizer
from training.__main__ import main as training_main
from training.config import TrainConfig
from training.data import (KD_COLUMNS, build_examples, epoch_examples, load_dev, load_pack, pack_embeddings, read_kd,
                           select_rows, subset_key)
from training.params import build, fit
from training.trainer import Trainer, build_model

TINY_GEN = {"vocab_size": 300, "d_model": 32, "n_layers": 2, "n_heads": 2, "ffn_hidden": 48, "n_prefix": 2,
            "bridge_hidden": 16, "max_len": 24}


def rows_of(sources):
    return [Row("train", s, "x", f"sentence number {i} from {s}") for i, s in enumerate(sources)]


def unit(n, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, 768)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_data_fraction_keeps_every_wordnet_row_and_nested_subsets_of_the_open_rows():
    rows = rows_of(["wordnet"] * 50 + ["brown"] * 2000)
    ten, thirty, full = (set(select_rows(rows, f).tolist()) for f in (0.1, 0.3, 1.0))
    assert set(range(50)) <= ten and ten < thirty < full == set(range(2050))
    assert 0.07 < (len(ten) - 50) / 2000 < 0.13 and 0.26 < (len(thirty) - 50) / 2000 < 0.34
    assert all(subset_key(rows[i].text) < 0.1 for i in ten if i >= 50)
    assert select_rows(rows, 1.0, limit=7).tolist() == list(range(7))
    with pytest.raises(ValueError, match=r"data_fraction must be in \(0, 1\], got 0"):
        select_rows(rows, 0)


def test_examples_weight_wordnet_rows_and_add_teacher_outputs_for_the_rows_it_decoded():
    rows = rows_of(["wordnet", "wordnet", "brown", "kjv"])
    emb = unit(4).astype(np.float16)
    kd = {rows[1].text: "teacher one", rows[2].text: "teacher two", "a text not in the data": "unused"}
    ex = build_examples(rows, emb, wordnet_weight=2.0, kd=kd, kd_weight=0.5)
    assert ex.texts == [r.text for r in rows] + ["teacher one", "teacher two"]
    assert ex.emb_index.tolist() == [0, 1, 2, 3, 1, 2]
    assert ex.weight.tolist() == [2.0, 2.0, 1.0, 1.0, 1.0, 0.5]
    assert ex.is_kd.tolist() == [False] * 4 + [True] * 2
    assert ex.summary() == {"rows": 4, "examples": 6, "kd_examples": 2, "copies_per_epoch": 7.5,
                            "kd_copies_per_epoch": 1.5}
    assert np.array_equal(build_examples(rows, emb, kd=kd, kd_weight=0).texts, [r.text for r in rows])
    with pytest.raises(ValueError, match="no train rows left"):
        build_examples(rows_of(["brown"] * 3), unit(3), data_fraction=1e-9)


def test_an_epoch_holds_whole_weights_as_copies_and_fractions_as_coin_flips():
    rng = np.random.default_rng(0)
    assert epoch_examples(np.ones(5), rng).tolist() == [0, 1, 2, 3, 4]
    assert rng.random() == np.random.default_rng(0).random()  # all weights 1: no random number drawn
    counts = np.zeros(3)
    for _ in range(2000):
        counts += np.bincount(epoch_examples(np.array([2.0, 0.5, 0.0]), rng), minlength=3)
    assert counts[0] == 4000 and counts[2] == 0 and 900 < counts[1] < 1100


def test_distillation_file_is_read_by_reference_text(tmp_path):
    path = tmp_path / "kd.tsv"
    path.write_text("\t".join(KD_COLUMNS) + '\n0\t-0.5\ta "dog" barked\tthe dog barked\n3\t-0.9\tit rained\t\n')
    assert read_kd(path) == {'a "dog" barked': "the dog barked", "it rained": ""}
    (tmp_path / "short.tsv").write_text("\t".join(KD_COLUMNS) + "\n0\t-0.5\tno output field\n")
    with pytest.raises(ValueError, match="line 2 has 3 fields, expected 4"):
        read_kd(tmp_path / "short.tsv")
    (tmp_path / "bad.tsv").write_text("row\tout\n")
    with pytest.raises(ValueError, match="header"):
        read_kd(tmp_path / "bad.tsv")
    with pytest.raises(FileNotFoundError, match="tools.distill"):
        read_kd(tmp_path / "missing.tsv")


def test_pack_holds_the_embedded_rows_and_reconstructs_their_embeddings(tmp_path):
    split = "open-dev"
    n = len(load_rows(split))
    x = unit(n, seed=1)
    done = np.zeros(n, dtype=bool)
    done[: n - 300] = True
    done[n - 50:] = True  # embedded rows need not be a prefix
    np.save(tmp_path / f"emb_{split}.npy", x.astype(np.float16))
    np.save(tmp_path / f"emb_{split}.done.npy", done)
    info = pack_embeddings(split, tmp_path / "p.npz", n_bytes=8, data_dir=tmp_path, train_n=1000)
    rows, emb = load_pack(tmp_path / "p.npz", split)
    assert info["rows"] == done.sum() == len(rows) == len(emb)
    assert [r.text for r in rows] == [r.text for r, d in zip(load_rows(split), done) if d]
    cos = (emb.astype(np.float32) * x[done]).sum(1)
    assert np.allclose(np.linalg.norm(emb.astype(np.float32), axis=1), 1, atol=1e-2)
    assert cos.mean() == pytest.approx(info["mean_cos"], abs=0.02) and cos.mean() > 0.15  # random vectors, 8 bytes: lossy
    with pytest.raises(ValueError, match="n_bytes must divide 768"):
        pack_embeddings(split, tmp_path / "q.npz", n_bytes=50, data_dir=tmp_path)
    with pytest.raises(ValueError, match="packed for other texts"):
        load_pack(tmp_path / "p.npz", "dev")


def test_model_config_file_and_fixed_tokenizer_start_a_run(tmp_path):
    tok = BPETokenizer(train_tokenizer(["the cat sat on the mat", "a dog barked at night"] * 20, 300))
    tok.save(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"kind": "generative", **TINY_GEN, "vocab_size": tok.vocab_size,
                                                      "conditioning": "adaln", "n_prefix": 0}))
    cfg = TrainConfig(out=str(tmp_path / "run"), model_config=str(tmp_path / "config.json"),
                      tokenizer=str(tmp_path / "tokenizer.json"), model={"n_layers": 1})
    model, tokenizer, saved = build_model(cfg, ["unused"], torch.device("cpu"))
    assert saved is None and model.cfg.conditioning == "adaln" and model.cfg.n_layers == 1
    assert tokenizer.encode(["the cat"]) == tok.encode(["the cat"])
    with pytest.raises(ValueError, match="holds a 'generative' config, not 'ret'"):
        TrainConfig(kind="ret", out="x", model_config=str(tmp_path / "config.json")).model_fields()
    bad = TrainConfig(out="x", model_config=str(tmp_path / "config.json"), tokenizer=str(tmp_path),
                      model={"vocab_size": 512})
    with pytest.raises(ValueError, match="config says vocab_size=512"):
        build_model(bad, ["unused"], torch.device("cpu"))
    with pytest.raises(ValueError, match="valid dev splits are dev, open-dev"):
        TrainConfig(dev_splits=["test"])


def test_a_tiny_run_with_wordnet_weight_and_distillation_trains_on_both_targets(tmp_path, monkeypatch):
    monkeypatch.setattr("training.trainer.encoder_available", lambda: False)  # no dev cosine: fast
    rows = rows_of(["wordnet"] * 8 + ["brown"] * 8)
    emb = unit(16)
    kd = {r.text: "teacher says " + r.text.split()[-1] for r in rows[::2]}
    data = build_examples(rows, emb.astype(np.float16), wordnet_weight=2.0, kd=kd, kd_weight=1.0)
    dev = {"dev": ([r.text for r in rows[:3]], torch.as_tensor(emb[:3]))}
    cfg = TrainConfig(out=str(tmp_path), model={**TINY_GEN, "vocab_size": 300}, steps=3, eval_every=10,
                      batch_size=4, warmup=1, device="cpu", eval_n=3, wordnet_weight=2.0, kd="-", kd_weight=1.0)
    trainer = Trainer(cfg, data, dev, quiet=True)
    assert trainer.seqs.shape[0] == 24 and trainer.tokenizer.decode(trainer.seqs[16, 1:-1].tolist()).startswith(
        "teacher says")
    last = trainer.run()
    assert last["step"] == 3 and last["data"]["kd_examples"] == 8 and last["data"]["copies_per_epoch"] == 36.0


def test_fit_finds_the_largest_value_under_the_target():
    fields = {**TINY_GEN, "conditioning": "adaln", "n_prefix": 0}
    target = build("generative", {**TINY_GEN}).num_parameters()
    v = fit("generative", fields, "ffn_hidden", target, step=8)
    assert build("generative", {**fields, "ffn_hidden": v}).num_parameters() <= target
    assert build("generative", {**fields, "ffn_hidden": v + 8}).num_parameters() > target
    with pytest.raises(ValueError, match="not an integer field"):
        fit("generative", fields, "gate", target)


def test_params_and_tokenizer_commands(tmp_path, capsys):
    assert training_main(["params", "ret", "--set", "conditioning=adaln", "n_prefix=0", "d_model=64",
                          "n_heads=2", "ffn_hidden=64", "bridge_hidden=32"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"] == sum(out["by_part"].values()) and out["by_part"]["adaln_modulation"] == 32 * 6 * 64 + 6 * 64
    assert training_main(["tokenizer", "--vocab", "300", "--out", str(tmp_path), "--fraction", "0.003"]) == 0
    info = json.loads(capsys.readouterr().out)
    tok = BPETokenizer.load(tmp_path)
    assert info["vocab"] == tok.vocab_size == 300 and tok.special_ids == {"pad": 0, "bos": 1, "eos": 2}
    assert tok.decode(tok.encode(["Café au lait, s'il vous plaît."])[0]) == "Café au lait, s'il vous plaît."


def test_dev_rows_are_taken_source_by_source_as_eval_takes_them(tmp_path):
    texts, emb = load_dev(9, "open-dev", tmp_path)   # nothing embedded in tmp_path: encoded here
    by_text = {r.text: r.source for r in load_rows("open-dev")}
    assert len({by_text[t] for t in texts}) == 9 and emb.shape == (9, 768)

"""tools.distill: teacher beam outputs per embedded row, resumable, joined by the trainer. Tiny teacher, CPU."""
import json

import numpy as np
import pytest
import torch

from decoders import checkpoint
from decoders.corpus import load_rows
from decoders.generative import KIND, BPETokenizer, Config, GenerativeDecoderModel, train_tokenizer
from decoders.transformer import beam_search
from tools.distill import main
from training.data import read_kd

SPLIT = "open-dev"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("distill")
    texts = [r.text for r in load_rows(SPLIT)[:200]]
    tok = BPETokenizer(train_tokenizer(texts, 300))
    torch.manual_seed(0)
    m = GenerativeDecoderModel(Config(vocab_size=tok.vocab_size, d_model=32, n_layers=1, n_heads=2, ffn_hidden=48,
                                      n_prefix=2, bridge_hidden=16, max_len=12)).eval()
    checkpoint.save(tmp / "teacher", m, tok, KIND)
    n = len(load_rows(SPLIT))
    x = np.random.default_rng(0).standard_normal((n, 768)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    done = np.zeros(n, dtype=bool)
    done[[0, 1, 2, 5, 8, 9, 13]] = True  # rows embedded so far
    np.save(tmp / f"emb_{SPLIT}.npy", x.astype(np.float16))
    np.save(tmp / f"emb_{SPLIT}.done.npy", done)
    return tmp, m, tok, x


def args(tmp, out, *extra):
    return ["--teacher", str(tmp / "teacher"), "--split", SPLIT, "--data-dir", str(tmp), "--out", str(out),
            "--beam", "3", "--max-new-tokens", "8", "--batch-size", "2", "--device", "cpu", *extra]


def test_outputs_are_the_teachers_beam_search_and_a_rerun_adds_only_new_rows(setup, capsys):
    tmp, m, tok, x = setup
    out = tmp / "kd.tsv"
    assert main(args(tmp, out, "--limit", "4")) == 0
    assert json.loads(capsys.readouterr().out)["new"] == 4
    assert main(args(tmp, out)) == 0
    assert json.loads(capsys.readouterr().out) | {"seconds": 0} == {"out": str(out), "rows": 7, "new": 3, "seconds": 0}
    lines = out.read_text().splitlines()
    rows = [int(line.split("\t")[0]) for line in lines[1:]]
    assert rows == [0, 1, 2, 5, 8, 9, 13]
    e = torch.as_tensor(x[rows].astype(np.float16).astype(np.float32))
    seqs, _ = beam_search(m, e, 3, 1, 2, 8)
    texts = [r.text for r in load_rows(SPLIT)]
    assert read_kd(out) == {texts[i]: tok.decode(s).replace("\n", " ").replace("\t", " ") for i, s in zip(rows, seqs)}


def test_other_search_settings_on_the_same_file_are_refused(setup):
    tmp, *_ = setup
    out = tmp / "kd2.tsv"
    assert main(args(tmp, out, "--limit", "1")) == 0
    with pytest.raises(SystemExit):
        main(args(tmp, out, "--beam", "5"))
    assert json.loads((tmp / "kd2.tsv.json").read_text())["beam"] == 3

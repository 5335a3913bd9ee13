"""Tests for the benchmark: metrics against hand-computed values, the command's files and errors.

Offline and CPU-only (HF_HUB_OFFLINE=1 is forced below); the encoders come from the PyPI packages.
"""
import contextlib
import csv
import io
import json
import math
import os
import sys
import types

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np
import pytest

import decoders
from decoders import Decoded, Decoder
from eval import charts, latency
from eval import metrics as m
from eval.__main__ import ENCODER_ROW, build_parser, main, requested_decoders

SUMMARY_REQUIRED = ["decoder", "params", "bleu", "bertscore_f1", "cos", "cos_independent", "exact", "p50_ms",
                    "p95_ms", "device", "threads", "n", "cos_std", "token_f1", "length_ratio", "p50_batch32_ms",
                    "p95_batch32_ms", "batch32_per_s", "p50_vs_encoder", "peak_rss_mb", "bertscore_backbone",
                    "bleu_signature"]
SAMPLES_REQUIRED = ["decoder", "input", "output", "bleu", "bertscore_f1", "cos", "cos_independent", "exact", "token_f1"]
FIVE = ["the cat sat on the mat", "a large dog barked at the postman", "she sang a song to the children",
        "an expression of greeting", "the act of running very fast"]
FAST = ["--threads", "1", "--latency-runs", "2", "--warmup", "0"]


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """main() sets torch's thread count (--threads 1); give the other test files theirs back."""
    import torch

    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


# --------------------------------------------------------------------------- string metrics

def test_sentence_bleu_identical_is_100_and_disjoint_is_0():
    assert m.sentence_bleu("the cat sat on the mat", "the cat sat on the mat") == pytest.approx(100)
    assert m.sentence_bleu("dog", "the cat sat") == 0.0


def test_sentence_bleu_uses_effective_order_on_short_sentences():
    # unigram 2/2, bigram 1/1, no trigrams or 4-grams counted; brevity penalty exp(1 - 3/2)
    assert m.sentence_bleu("the cat", "the cat sat") == pytest.approx(100 * math.exp(1 - 3 / 2))


def test_empty_hypothesis_is_scored_not_failed():
    assert m.sentence_bleu("", "the cat sat") == 0.0
    assert m.token_f1("", "the cat sat") == 0.0
    assert m.length_ratio("", "the cat sat") == 0.0
    assert m.exact_match("", "the cat sat") is False


def test_corpus_bleu_returns_score_and_signature():
    score, sig = m.corpus_bleu(["the cat sat on the mat", "a b c d e"], ["the cat sat on the mat", "a b c d e"])
    assert score == pytest.approx(100)
    assert "nrefs:1" in sig and "tok:13a" in sig and "version:" in sig
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        m.corpus_bleu(["a", "b"], ["a"])


def test_exact_match_normalises_case_and_whitespace_only():
    assert m.exact_match("The  Cat\tsat ", "the cat SAT")
    assert not m.exact_match("the cat sat.", "the cat sat")


def test_token_f1_hand_computed():
    assert m.token_f1("the cat sat", "the cat ran away") == pytest.approx(4 / 7)  # P 2/3, R 2/4
    assert m.token_f1("a a b", "a b b") == pytest.approx(2 / 3)  # clipped counts: one a, one b
    assert m.token_f1("The cat!", "the cat") == 1.0
    assert m.token_f1("", "") == 1.0
    assert m.token_f1("x y", "a b") == 0.0


def test_length_ratio_counts_words_and_rejects_empty_reference():
    assert m.length_ratio("a b", "a b c d") == 0.5
    assert m.length_ratio("hello, world!", "hello world") == 1.0
    with pytest.raises(ValueError, match="no words"):
        m.length_ratio("a", "")


def test_distinct_n_hand_computed():
    assert m.distinct_n(["a b a b"], 1) == 0.5        # {a, b} / 4
    assert m.distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)  # {ab, ba} / 3
    assert m.distinct_n(["a b", "a b"], 2) == 0.5
    assert m.distinct_n(["a", "b"], 2) != m.distinct_n(["a", "b"], 2)  # no bigram within a sample: NaN
    with pytest.raises(ValueError):
        m.distinct_n(["a"], 0)


def test_metrics_raise_on_bad_input_instead_of_scoring_zero():
    with pytest.raises(TypeError):
        m.sentence_bleu(None, "a")
    with pytest.raises(TypeError):
        m.token_f1("a", 3)
    with pytest.raises(ValueError):
        m.corpus_bleu([], [])


# --------------------------------------------------------------------------- model metrics

def test_bertscore_identical_is_one_and_above_unrelated():
    f1 = m.bertscore_f1(["the cat sat on the mat", "the cat sat on the mat"],
                        ["the cat sat on the mat", "quantum chromodynamics describes quarks"])
    assert f1[0] == pytest.approx(1.0, abs=1e-4)
    assert f1[1] < 0.5 < f1[0]


def test_bertscore_empty_hypothesis_is_zero_and_empty_reference_raises():
    f1 = m.bertscore_f1(["", "a dog"], ["the cat sat", "a dog"])
    assert f1[0] == 0.0 and f1[1] == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(ValueError, match="empty"):
        m.bertscore_f1(["a"], [" "])


def test_bertscore_backbone_is_local_minilm_last_layer():
    assert "all-MiniLM-L6-v2" in m.BERTSCORE_BACKBONE and "layer 6" in m.BERTSCORE_BACKBONE
    assert os.path.isdir(m._bertscore_config(None, None)[0])  # a local path: no hub needed


def test_roundtrip_cosine_identical_is_one_and_disjoint_low():
    from decoders.encoder import encode

    refs = ["the cat sat on the mat", "quantum chromodynamics describes quarks"]
    target = encode(refs)
    cos = m.roundtrip_cosine(["the cat sat on the mat", "the cat sat on the mat"], target)
    assert cos[0] == pytest.approx(1.0, abs=1e-4)
    assert cos[1] < 0.3
    with pytest.raises(ValueError, match="one row per hypothesis"):
        m.roundtrip_cosine(["a"], target)


def test_roundtrip_cosine_encodes_empty_output_as_is():
    from decoders.encoder import encode

    cos = m.roundtrip_cosine([""], encode(["the cat sat on the mat"]))
    assert np.isfinite(cos[0]) and -1 <= cos[0] < 0.5


def test_independent_cosine_identical_is_one_and_disjoint_low():
    cos = m.independent_cosine(["a dog barks", "a dog barks"], ["a dog barks", "tax law of the eighteenth century"])
    assert cos[0] == pytest.approx(1.0, abs=1e-4)
    assert cos[1] < 0.3


# --------------------------------------------------------------------------- latency

def test_time_calls_warms_up_then_times_each_run():
    calls = []
    ms = latency.time_calls(calls.append, runs=4, warmup=2, device="cpu")
    assert calls == [0, 1, 0, 1, 2, 3] and ms.shape == (4,) and (ms >= 0).all()
    assert latency.p50_p95(np.array([1.0, 2.0, 3.0, 4.0, 100.0]))[0] == 3.0


def test_a_slow_setting_stops_after_its_time_but_not_before_three_runs():
    import time
    calls = []
    ms = latency.time_calls(lambda i: (calls.append(i), time.sleep(0.02)), runs=50, warmup=0, device="cpu",
                            max_seconds=0.001)
    assert len(calls) == len(ms) == latency.MIN_RUNS


# --------------------------------------------------------------------------- the command

@pytest.fixture
def five_lines(tmp_path):
    path = tmp_path / "five.txt"
    path.write_text("\n".join(FIVE) + "\n")
    return path


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _check_outputs(out, decoder_names, n):
    summary = _read_csv(out / "summary.csv")
    assert set(SUMMARY_REQUIRED) <= set(summary[0])
    assert [r["decoder"] for r in summary] == [ENCODER_ROW, *decoder_names]
    assert summary[0]["bleu"] == "" and summary[0]["p50_ms"] != ""  # encoder: latency, no quality
    assert float(summary[0]["p50_vs_encoder"]) == 1.0
    for row in summary[1:]:
        for col in ("bleu", "bertscore_f1", "cos", "cos_independent", "exact", "p50_ms", "p95_ms"):
            assert math.isfinite(float(row[col])), (row["decoder"], col)
        assert float(row["p95_ms"]) >= float(row["p50_ms"]) > 0
        # ratios and throughput from the same run's numbers
        assert float(row["p50_vs_encoder"]) == pytest.approx(float(row["p50_ms"]) / float(summary[0]["p50_ms"]),
                                                             rel=1e-4)
        assert float(row["batch32_per_s"]) == pytest.approx(32_000 / float(row["p50_batch32_ms"]), rel=1e-4)
        assert row["device"] == "cpu" and row["threads"] == "1" and row["n"] == str(n)
    samples = _read_csv(out / "samples.csv")
    assert set(SAMPLES_REQUIRED) <= set(samples[0])
    assert len(samples) == n * len(decoder_names)
    env = json.loads((out / "env.json").read_text())
    for key in ("packages", "cpu_model", "torch_threads", "git_commit", "command", "seed", "date_utc"):
        assert key in env
    return summary, samples, env


class _StubDecoder(Decoder):
    """Empty text for even rows, a fixed sentence for odd rows: exercises scoring of empty outputs."""
    name = "stub"

    @property
    def num_parameters(self):
        return 7

    def _decode(self, x, sampling):
        return [[Decoded("" if i % 2 == 0 else "the cat sat on the mat", 0.0)] for i in range(x.shape[0])]


def _load_stub(device="cpu"):
    return _StubDecoder()


def _load_broken(device="cpu"):
    raise FileNotFoundError("no weights in assets/broken")


@contextlib.contextmanager
def _registry(**specs):
    """The registry with only these decoders (name -> "module:loader"), the stubs importable."""
    module = types.ModuleType("_eval_stub_decoders")
    module.load, module.load_broken = _load_stub, _load_broken
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "_eval_stub_decoders", module)
        mp.setattr(decoders, "DECODERS", {name: decoders.DecoderSpec(spec) for name, spec in specs.items()})
        decoders.get_decoder.cache_clear()
        try:
            yield
        finally:
            decoders.get_decoder.cache_clear()


STUBS = {"stub": "_eval_stub_decoders:load", "broken": "_eval_stub_decoders:load_broken"}


@pytest.fixture
def stub_registry():
    with _registry(**STUBS):
        yield


@pytest.fixture(scope="module")
def run_all(tmp_path_factory):
    """One `--decoders all` run on five lines, shared by the tests below (each run times the encoder
    on a batch of 32, seconds of CPU): the real phrase bank, a stub, and a decoder that cannot load."""
    import torch

    folder = tmp_path_factory.mktemp("eval")
    (folder / "five.txt").write_text("\n".join(FIVE) + "\n")
    out, err, threads = folder / "cpu", io.StringIO(), torch.get_num_threads()
    with _registry(**{"phrase-bank": decoders.DECODERS["phrase-bank"].loader}, **STUBS), \
            contextlib.redirect_stderr(err):
        code = main(["--decoders", "all", "--input", str(folder / "five.txt"), "--out", str(out), *FAST])
    torch.set_num_threads(threads)
    return types.SimpleNamespace(code=code, out=out, stderr=err.getvalue())


def test_command_writes_three_files_with_a_row_per_loaded_decoder(run_all):
    assert run_all.code == 0
    _, samples, env = _check_outputs(run_all.out, ["phrase-bank", "stub"], 5)
    assert [s["input"] for s in samples if s["decoder"] == "phrase-bank"] == FIVE
    assert env["decoders_measured"] == ["phrase-bank", "stub"]


def test_all_skips_a_decoder_that_cannot_load_and_records_it(run_all):
    assert "skipping decoder 'broken'" in run_all.stderr
    summary = _read_csv(run_all.out / "summary.csv")
    env = json.loads((run_all.out / "env.json").read_text())
    assert env["decoders_skipped"] == {"broken": "FileNotFoundError: no weights in assets/broken"}
    stub = next(r for r in summary if r["decoder"] == "stub")
    assert stub["params"] == "7" and stub["empty_outputs"] == "3"
    samples = [s for s in _read_csv(run_all.out / "samples.csv") if s["decoder"] == "stub"]
    assert [s["output"] for s in samples][:2] == ["", "the cat sat on the mat"]
    assert float(samples[0]["bleu"]) == 0.0 and float(samples[0]["bertscore_f1"]) == 0.0


def test_charts_build_from_a_run(run_all):
    df = charts.load_results(run_all.out.parent)  # finds <folder>/cpu/summary.csv one level down
    assert list(df["decoder"]) == [ENCODER_ROW, "phrase-bank", "stub"] and "device" in df
    assert len(charts.quality_chart(df).data) == 4
    assert charts.params_chart(df).layout.xaxis.type == "log"
    assert len(charts.latency_chart(df).data) == 4  # 1 input / batch of 32, decoders / encoder


def test_explicitly_named_decoder_that_cannot_load_is_an_error_before_any_work(stub_registry, five_lines, tmp_path,
                                                                              capsys):
    with pytest.raises(SystemExit) as e:
        main(["--decoders", "stub,broken", "--input", str(five_lines), "--out", str(tmp_path / "x"), *FAST])
    assert e.value.code != 0 and "decoder 'broken' could not be loaded: FileNotFoundError" in str(e.value.code)
    assert "timing" not in capsys.readouterr().err   # neither the encoder nor the stub was measured
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("args, message", [
    (["--decoders", "nope"], "unknown decoder(s) 'nope'; valid decoders:"),
    (["--input", "/nonexistent/file.txt"], "no such file"),
    (["--split", "nope"], "invalid choice: 'nope'"),
    (["--limit", "0"], "must be an integer >= 1"),
])
def test_bad_arguments_exit_2_with_a_clear_message(args, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_decoders_default_and_all_come_from_the_registry():
    parser = build_parser()
    assert requested_decoders("default", parser) == decoders.default_decoders()
    assert requested_decoders("all", parser) == decoders.available_decoders()
    assert set(requested_decoders("default", parser)) <= set(requested_decoders("all", parser))
    assert requested_decoders("ret, phrase-bank,ret", parser) == ["ret", "phrase-bank"]


def test_empty_input_file_exits_2(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(SystemExit) as e:
        main(["--input", str(empty)])
    assert e.value.code == 2 and "holds no text" in capsys.readouterr().err


def test_a_limited_open_split_takes_every_source_in_turn():
    from collections import Counter

    from decoders.corpus import load_rows
    from eval.__main__ import build_parser, read_inputs
    parser = build_parser()
    texts, source = read_inputs(parser.parse_args(["--split", "open-test", "--limit", "18"]), parser)
    by_text = {r.text: r.source for r in load_rows("open-test")}
    assert source == "open-test[:18]" and set(Counter(by_text[t] for t in texts).values()) == {2}
    wordnet, _ = read_inputs(parser.parse_args(["--split", "test", "--limit", "5"]), parser)
    assert wordnet == [r.text for r in load_rows("test")[:5]]   # one source: corpus order


def test_by_source_groups_a_runs_samples_by_the_source_of_each_input(tmp_path):
    import pandas as pd

    from decoders.corpus import load_rows
    from eval.by_source import by_source

    rows = load_rows("open-test")
    picked = [r for r in rows if r.source == "brown"][:3] + [r for r in rows if r.source == "kjv"][:2]
    pd.DataFrame({"decoder": "x", "input": [r.text for r in picked], "cos": [0.5, 0.6, 0.7, 0.9, 1.0],
                  "bleu": [1.0, 2.0, 3.0, 4.0, 6.0]}).to_csv(tmp_path / "samples.csv", index=False)
    table = by_source(tmp_path, "open-test").set_index("source")
    assert table.loc["kjv", "cos"] == pytest.approx(0.95) and table.loc["brown", "n"] == 3
    assert table.loc["brown", "bleu"] == pytest.approx(2.0) and list(table.index) == ["kjv", "brown"]
    with pytest.raises(SystemExit, match="5 inputs .* not texts of the test split"):
        by_source(tmp_path, "test")

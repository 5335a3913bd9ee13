"""Per-source means of an evaluation run over a corpus split (which source each input came from).

    python -m eval.by_source assets/results/cpu-bank-open-test --split open-test

Reads the run's samples.csv and prints a markdown table: one row per source, the mean round-trip
cosine and sentence BLEU of each decoder, and the number of inputs.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from decoders.corpus import load_rows


def by_source(run_dir: Path, split: str) -> pd.DataFrame:
    """Mean cos and sentence BLEU per (source, decoder) of a run's samples; an input that is not a
    text of `split` is an error (the run was over another split)."""
    samples = pd.read_csv(Path(run_dir) / "samples.csv")
    source = {r.text: r.source for r in load_rows(split)}
    samples["source"] = samples["input"].map(source)
    missing = samples["source"].isna().sum()
    if missing:
        raise SystemExit(f"{missing} inputs of {run_dir}/samples.csv are not texts of the {split} split")
    table = samples.groupby(["source", "decoder"]).agg(cos=("cos", "mean"), bleu=("bleu", "mean"),
                                                       n=("cos", "size"))
    return table.reset_index().sort_values(["decoder", "cos"], ascending=[True, False])


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m eval.by_source", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path, help="an output folder of python -m eval (holds samples.csv)")
    p.add_argument("--split", default="open-test", help="the corpus split the run decoded")
    a = p.parse_args(argv)
    table = by_source(a.run_dir, a.split)
    print("| source | decoder | n | cos | sentence BLEU |\n|---|---|---:|---:|---:|")
    for r in table.itertuples():
        print(f"| {r.source} | {r.decoder} | {r.n} | {r.cos:.3f} | {r.bleu:.2f} |")


if __name__ == "__main__":
    main()

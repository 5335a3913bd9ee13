"""Write or check the manifests of the shipped model and corpus files (decoders/assets.py).

    python -m tools.manifest                    # record every file of every shipped folder
    python -m tools.manifest assets/ret         # only these folders
    python -m tools.manifest --check            # exit 1, listing each file that differs from its manifest

Run it after a deliberate rebuild (a new phrase bank, a retrained checkpoint, a new corpus) and
commit the MANIFEST.json files with the new assets.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from decoders.assets import ROOT, checked_files, problems, shown, write

# Every shipped folder and the command that rebuilds its files (README "Rebuilding everything").
SHIPPED = {
    "assets/phrase_bank": "python -m tools.phrase_bank build",        # = decoders.phrase_bank.REBUILD
    "assets/generative": "python -m training generative --out assets/generative",
    "assets/ret": "python -m training ret --out assets/ret",
    "assets/word_probe": "python -m training.word_probe --out assets/word_probe",
    "assets/screen": "python -m training.screen --out assets/screen",
    "assets/corpus": "python -m tools.corpus_build --wordnet /usr/share/wordnet",
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="*", help=f"shipped folders to record (default: all of {', '.join(SHIPPED)})")
    p.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on any difference")
    a = p.parse_args(argv)
    unknown = [f for f in a.folders if f.rstrip("/") not in SHIPPED]
    if unknown:
        p.error(f"not a shipped folder: {', '.join(unknown)}; shipped folders: {', '.join(SHIPPED)}")
    folders = [f.rstrip("/") for f in a.folders] or list(SHIPPED)
    t = time.perf_counter()
    if a.check:
        found = [msg for f in folders for msg in problems(ROOT / f)]
        for msg in found:
            print(msg)
        n = sum(len(checked_files(ROOT / f)) for f in folders)
        print(f"{n} files in {len(folders)} folders checked in {time.perf_counter() - t:.1f} s: "
              f"{len(found)} difference(s)")
        return 1 if found else 0
    for f in folders:
        data = write(ROOT / f, SHIPPED[f])
        size = sum(e["size"] for e in data["files"].values())
        print(f"{shown(ROOT / f / 'MANIFEST.json')}: {len(data['files'])} files, {size / 2**20:.1f} MiB")
    print(f"recorded in {time.perf_counter() - t:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

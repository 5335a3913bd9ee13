"""Checked model files: a folder of shipped files carries MANIFEST.json, the size and sha256 of
each file and the command that rebuilds them.

    {"rebuild": "python -m training ret --out assets/ret",
     "files": {"model.safetensors": {"size": 3026608, "sha256": "9f2c..."}, ...}}

    python -m tools.manifest            # (re)write the manifests of the shipped folders under assets/
    python -m tools.manifest --check    # compare every shipped file with its manifest

Loaders call `verify(folder, names)` before they read: a listed file that is missing, or whose
size or sha256 differs, raises an error naming the file, the command that rebuilds it and the
command that records a deliberate rebuild. Under assets/ a folder must have a manifest; a folder
elsewhere (a test's checkpoint, a training snapshot) is checked when it has one. Savers
(`checkpoint.save`, `phrase_bank.save`) call `record` for the files they write, so a checkpoint
written in place (training, `--resume`) loads without a manual step.

Each file is hashed once per process (keyed by path, size and modification time), so loading
the same folder twice costs two `stat` calls per file.
"""
from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
MANIFEST = "MANIFEST.json"
RECORD = "python -m tools.manifest"
DOCS = (".md",)                 # documents written by hand are not checked
DOC_NAMES = ("LICENSE",)


def shown(path: Path) -> str:
    """`path` relative to the repository when it is inside it (as the commands expect), else absolute."""
    path = Path(path).absolute()
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


@lru_cache(maxsize=None)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256(path: Path) -> str:
    """Hex sha256 of a file; computed again only when its size or modification time changes."""
    st = os.stat(path)
    return _sha256(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def entry(path: Path) -> dict:
    return {"size": os.path.getsize(path), "sha256": sha256(path)}


def read(folder: Path) -> dict | None:
    """The folder's manifest, or None when it has none."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    if not isinstance(data.get("files"), dict):
        raise ValueError(f"{shown(path)} has no \"files\" object; rewrite it with `{RECORD}`")
    return data


def _write(folder: Path, data: dict) -> None:
    path = Path(folder) / MANIFEST
    tmp = path.with_name(f".{MANIFEST}.{os.getpid()}.tmp")
    files = [f"  {json.dumps(name)}: {json.dumps(e)}" for name, e in sorted(data["files"].items())]
    tmp.write_text(f'{{\n "rebuild": {json.dumps(data.get("rebuild"))},\n "files": {{\n' + ",\n".join(files)
                   + "\n }\n}\n")  # one line per file: a rebuild shows as one changed line per file
    tmp.replace(path)  # atomic: a reader sees the old manifest or the new one


def checked_files(folder: Path) -> list[str]:
    """The files of `folder` a manifest covers: all but the manifest and documents (*.md, LICENSE)."""
    return sorted(p.name for p in Path(folder).iterdir()
                  if p.is_file() and p.name != MANIFEST and not p.name.startswith(".")
                  and p.suffix not in DOCS and p.name not in DOC_NAMES)


def write(folder: Path, rebuild: str) -> dict:
    """Record every checked file of `folder` (dropping entries for files that are gone); returns the manifest."""
    folder = Path(folder)
    data = {"rebuild": rebuild, "files": {name: entry(folder / name) for name in checked_files(folder)}}
    _write(folder, data)
    return data


def record(folder: Path, names, rebuild: str) -> None:
    """Add or update the entries of `names` in the folder's manifest (created when missing); an
    existing manifest keeps its rebuild command."""
    folder = Path(folder)
    data = read(folder) or {"rebuild": rebuild, "files": {}}
    data["rebuild"] = data.get("rebuild") or rebuild
    for name in names:
        data["files"][name] = entry(folder / name)
    _write(folder, data)


def _fix(path: Path, rebuild: str | None) -> str:
    how = f"rebuild it with `{rebuild}`" if rebuild else "rebuild it"
    return (f"restore the committed file (`git checkout -- {shown(path)}`) or {how}; after a deliberate "
            f"rebuild, record the new files with `{RECORD}`")


def verify(folder: Path, names) -> bool:
    """Check the files `names` of `folder` against its manifest; True when checked, False when the
    folder has no manifest and is outside assets/.

    Raises FileNotFoundError for a listed file that is missing and ValueError for a file whose
    size or sha256 differs from the manifest, or that the manifest does not list; each names the
    file and the commands that fix it. A name neither listed nor on disk is skipped.
    """
    folder = Path(folder)
    data = read(folder)
    if data is None:
        if folder.resolve().is_relative_to(ASSETS.resolve()):
            raise FileNotFoundError(f"{shown(folder / MANIFEST)} is missing: the files in {shown(folder)} cannot be "
                                    f"checked; record them with `{RECORD}`")
        return False
    rebuild, listed = data.get("rebuild"), data["files"]
    for name in names:
        path = folder / name
        want = listed.get(name)
        if want is None:
            if path.exists():
                raise ValueError(f"{shown(path)} is not listed in {shown(folder / MANIFEST)}; "
                                 f"record it with `{RECORD}`")
            continue
        if not path.is_file():
            raise FileNotFoundError(f"{shown(path)} is missing (listed in {shown(folder / MANIFEST)}); "
                                    + _fix(path, rebuild))
        size = os.path.getsize(path)
        if size != want["size"]:
            raise ValueError(f"{shown(path)} has {size:,} bytes, but {shown(folder / MANIFEST)} records "
                             f"{want['size']:,}: the file is damaged or was changed; " + _fix(path, rebuild))
        got = sha256(path)
        if got != want["sha256"]:
            raise ValueError(f"{shown(path)} has sha256 {got[:12]}..., but {shown(folder / MANIFEST)} records "
                             f"{want['sha256'][:12]}...: the file is damaged or was changed; " + _fix(path, rebuild))
    return True


def problems(folder: Path) -> list[str]:
    """Every difference between `folder` and its manifest (missing, changed or unlisted files), as messages."""
    folder = Path(folder)
    try:
        data = read(folder)
        if data is None:
            return [f"{shown(folder / MANIFEST)} is missing; record it with `{RECORD}`"]
    except ValueError as e:
        return [str(e)]
    out = []
    for name in sorted(set(data["files"]) | set(checked_files(folder))):
        try:
            verify(folder, [name])
        except (FileNotFoundError, ValueError) as e:
            out.append(str(e))
    return out

"""Ratings from qualitative review sessions, kept in SQLite so they survive restarts.

A reviewer steps through a set of inputs and rates each decoder's output from 1 to 5 with an
optional note. One row per (reviewer, set, item, decoder): rating the same output again
replaces that reviewer's own rating and nobody else's, so several reviewers can work at once.

    save_rating("ana", "test[:5]", 0, "the team is a unit", "generative", "the team is a unit of team", 4)
    summary()                      # per decoder: ratings, reviewers, mean, share rated 4 or 5
    export_csv("ratings.csv")

Where the database lives: $DECODER_LAB_REVIEW_DB, else reviews.sqlite in the user's data
directory ($XDG_DATA_HOME/decoder-lab, by default ~/.local/share/decoder-lab).
"""
from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

ENV = "DECODER_LAB_REVIEW_DB"
SCALE = {1: "unrelated", 2: "same topic", 3: "partly right", 4: "same meaning, other words", 5: "same meaning"}
MAX_NAME = 64    # characters in a reviewer or set name
MAX_NOTE = 1000  # characters in a note
COLUMNS = ["reviewer", "review_set", "item", "input", "decoder", "output", "rating", "note", "sampling", "rated_utc"]
SCHEMA = """
CREATE TABLE IF NOT EXISTS ratings (
    reviewer   TEXT    NOT NULL,
    review_set TEXT    NOT NULL,
    item       INTEGER NOT NULL,   -- position of the input in its set, from 0
    input      TEXT    NOT NULL,
    decoder    TEXT    NOT NULL,
    output     TEXT    NOT NULL,   -- the text the reviewer saw and rated
    rating     INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
    note       TEXT    NOT NULL DEFAULT '',
    sampling   TEXT    NOT NULL DEFAULT '',
    rated_utc  TEXT    NOT NULL,
    PRIMARY KEY (reviewer, review_set, item, decoder)
)"""


def db_path() -> Path:
    """$DECODER_LAB_REVIEW_DB, else <user data dir>/decoder-lab/reviews.sqlite."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV]).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "decoder-lab" / "reviews.sqlite"


def connect(path: str | Path | None = None) -> sqlite3.Connection:
    """A connection to the ratings database at `path` (default `db_path()`), created if absent."""
    path = Path(path) if path else db_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=10)  # waits for another writer instead of failing
    con.execute("PRAGMA journal_mode=WAL")
    con.execute(SCHEMA)
    return con


def check_name(value, what: str) -> str:
    """`value` stripped, or ValueError when it is empty or longer than MAX_NAME."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} is empty: type a name")
    value = value.strip()
    if len(value) > MAX_NAME:
        raise ValueError(f"{what} has {len(value)} characters; the limit is {MAX_NAME}")
    return value


def save_rating(reviewer: str, review_set: str, item: int, input: str, decoder: str, output: str, rating: int,
                note: str = "", sampling: str = "", path: str | Path | None = None) -> None:
    """Store one rating; the same reviewer rating the same (set, item, decoder) again replaces it."""
    reviewer, review_set = check_name(reviewer, "the reviewer name"), check_name(review_set, "the set name")
    if isinstance(rating, bool) or not isinstance(rating, int) or rating not in SCALE:
        raise ValueError(f"rating must be a whole number from 1 to 5, got {rating!r}")
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        raise ValueError(f"the note has {len(note)} characters; the limit is {MAX_NOTE}")
    row = (reviewer, review_set, int(item), input, decoder, output, rating, note, sampling,
           datetime.now(timezone.utc).isoformat(timespec="seconds"))
    with closing(connect(path)) as con, con:
        con.execute(f"INSERT OR REPLACE INTO ratings ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})", row)


def load_ratings(path: str | Path | None = None, reviewer: str | None = None,
                 review_set: str | None = None) -> pd.DataFrame:
    """All ratings (optionally of one reviewer and/or one set), oldest first."""
    where, args = [], []
    for col, value in (("reviewer", reviewer), ("review_set", review_set)):
        if value:
            where.append(f"{col} = ?")
            args.append(value.strip())
    sql = f"SELECT {', '.join(COLUMNS)} FROM ratings"
    sql += (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY rated_utc, review_set, item, decoder"
    with closing(connect(path)) as con:
        return pd.read_sql_query(sql, con, params=args)


def summary(path: str | Path | None = None, review_set: str | None = None) -> pd.DataFrame:
    """Per decoder: number of ratings, items, reviewers, mean rating and the share rated 4 or 5."""
    df = load_ratings(path, review_set=review_set)
    cols = ["decoder", "ratings", "items", "reviewers", "mean rating", "rated 4-5"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    g = df.groupby("decoder")
    out = pd.DataFrame({
        "ratings": g.size(),
        "items": df.drop_duplicates(["decoder", "review_set", "item"]).groupby("decoder").size(),
        "reviewers": g["reviewer"].nunique(),
        "mean rating": g["rating"].mean().round(2),
        "rated 4-5": (df["rating"] >= 4).groupby(df["decoder"]).mean().round(3),
    }).reset_index()
    return out[cols].sort_values("mean rating", ascending=False, ignore_index=True)


def export_csv(out: str | Path, path: str | Path | None = None, reviewer: str | None = None,
               review_set: str | None = None) -> Path:
    """Write the ratings (optionally filtered) to `out` as CSV; returns `out`."""
    out = Path(out)
    load_ratings(path, reviewer, review_set).to_csv(out, index=False)
    return out


def rated(reviewer: str, review_set: str, item: int, path: str | Path | None = None) -> dict[str, tuple[int, str]]:
    """decoder -> (rating, note) this reviewer already gave for one item (to pre-fill the form)."""
    with closing(connect(path)) as con:
        rows = con.execute("SELECT decoder, rating, note FROM ratings WHERE reviewer = ? AND review_set = ? AND item = ?",
                           (reviewer.strip(), review_set, int(item))).fetchall()
    return {d: (r, n) for d, r, n in rows}

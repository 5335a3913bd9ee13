"""eval/review.py: ratings survive a reopen, reviewers never overwrite each other, CSV export, summary."""
import sqlite3

import pandas as pd
import pytest

from eval import review


@pytest.fixture
def db(tmp_path, monkeypatch):
    path = tmp_path / "sub" / "reviews.sqlite"
    monkeypatch.setenv(review.ENV, str(path))
    return path


def rate(reviewer, item, decoder, rating, note="", review_set="test[:5]"):
    review.save_rating(reviewer, review_set, item, f"input {item}", decoder, f"{decoder} output {item}", rating, note)


def test_the_database_path_comes_from_the_environment_or_the_user_data_dir(db, monkeypatch, tmp_path):
    assert review.db_path() == db
    monkeypatch.delenv(review.ENV)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert review.db_path() == tmp_path / "xdg" / "decoder-lab" / "reviews.sqlite"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert review.db_path().parts[-4:] == (".local", "share", "decoder-lab", "reviews.sqlite")


def test_ratings_survive_a_new_connection_and_a_rerating_replaces_only_its_own_row(db):
    rate("ana", 0, "generative", 2)
    rate("ben", 0, "generative", 5, note="perfect")
    rate("ana", 0, "generative", 4, note="on reflection")  # ana changes her mind
    assert db.exists()
    df = review.load_ratings()  # opens the file afresh, as a restarted app would
    assert len(df) == 2
    got = df.set_index("reviewer")[["rating", "note"]].to_dict("index")
    assert got == {"ana": {"rating": 4, "note": "on reflection"}, "ben": {"rating": 5, "note": "perfect"}}
    assert review.rated("ana", "test[:5]", 0) == {"generative": (4, "on reflection")}
    with sqlite3.connect(db) as con:  # plain SQLite, readable without this module
        assert con.execute("SELECT count(*) FROM ratings").fetchone() == (2,)


def test_summary_is_per_decoder(db):
    for item, (g, r) in enumerate([(5, 1), (4, 2), (1, 3)]):
        rate("ana", item, "generative", g)
        rate("ana", item, "ret", r)
    rate("ben", 0, "ret", 5)
    s = review.summary().set_index("decoder")
    assert s.loc["generative", "ratings"] == 3 and s.loc["ret", "ratings"] == 4
    assert s.loc["ret", "items"] == 3 and s.loc["ret", "reviewers"] == 2
    assert s.loc["generative", "mean rating"] == pytest.approx(10 / 3, abs=0.01)
    assert s.loc["generative", "rated 4-5"] == pytest.approx(2 / 3, abs=0.001)
    assert s.loc["ret", "rated 4-5"] == pytest.approx(1 / 4)
    assert review.summary(review_set="no such set").empty


def test_csv_export_holds_every_rating_with_its_reviewer(db, tmp_path):
    rate("ana", 0, "generative", 3, note='a "quoted", note')
    rate("ben", 1, "phrase-bank", 1)
    out = review.export_csv(tmp_path / "ratings.csv")
    df = pd.read_csv(out, keep_default_na=False)
    assert list(df.columns) == review.COLUMNS
    assert sorted(zip(df["reviewer"], df["decoder"], df["rating"])) == [("ana", "generative", 3), ("ben", "phrase-bank", 1)]
    assert df.loc[df["reviewer"] == "ana", "note"].item() == 'a "quoted", note'
    only_ben = pd.read_csv(review.export_csv(tmp_path / "ben.csv", reviewer="ben"))
    assert list(only_ben["reviewer"]) == ["ben"]


@pytest.mark.parametrize("kwargs, message", [
    (dict(reviewer=""), "reviewer name is empty"),
    (dict(reviewer="x" * 65), "the limit is 64"),
    (dict(rating=6), "rating must be a whole number from 1 to 5, got 6"),
    (dict(rating=0), "from 1 to 5"),
    (dict(rating=3.5), "from 1 to 5"),
    (dict(rating=None), "from 1 to 5"),
    (dict(note="n" * 1001), "the limit is 1000"),
])
def test_bad_ratings_are_refused_and_nothing_is_stored(db, kwargs, message):
    args = dict(reviewer="ana", review_set="s", item=0, input="i", decoder="ret", output="o", rating=3) | kwargs
    with pytest.raises(ValueError, match=message):
        review.save_rating(**args)
    assert review.load_ratings().empty

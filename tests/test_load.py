"""`python -m eval.load` against the session's app server (a few requests), its limits, and the
app's answer when its queue is full."""
import csv
import json

import pytest
from fastapi import HTTPException

from eval import load


def test_a_small_load_run_reports_every_request_and_the_server_memory(app_server, tmp_path, capsys):
    code = load.main(["--url", app_server["url"], "--clients", "3", "--requests", "2", "--decoders", "phrase-bank",
                      "--warmup", "1", "--out", str(tmp_path)])
    summary = json.loads((tmp_path / "load.json").read_text())
    assert code == 0 and summary["ok"] == 6 and summary["failures"] == summary["queue_rejections"] == 0
    assert 0 < summary["latency_s"]["p50"] <= summary["latency_s"]["p95"] <= summary["latency_s"]["max"]
    rss = summary["server_rss"]
    assert 100 < rss["start_mb"] <= rss["peak_mb"] and rss["end_mb"] <= rss["peak_mb"]
    assert list(rss["by_requests_answered"]) == ["10%", "25%", "50%", "75%", "100%"]
    assert summary["command"].startswith("python -m eval.load --url ") and summary["environment"]["cpu_count"] >= 1
    rows = list(csv.DictReader(open(tmp_path / "requests.csv")))
    assert len(rows) == 6 and {r["status"] for r in rows} == {"ok"} and len({r["text"] for r in rows}) == 6


def test_a_request_that_fails_is_a_failure_not_a_success(app_server):
    r = load.call(app_server["url"], "a cat", ["phrase-bank"], 60, expect=["phrase-bank", "generative"])
    assert r["status"] == "failed" and "expected ['phrase-bank', 'generative']" in r["error"]
    r = load.call(app_server["url"], "", ["phrase-bank"], 60)
    assert r["status"] == "failed" and "text is empty" in r["error"]


@pytest.mark.parametrize("url", ["http://10.0.0.5:7860/", "http://example.com/", "https://8.8.8.8/"])
def test_only_this_machine_is_loaded(url):
    with pytest.raises(SystemExit, match="--url must point at this machine"):
        load.check_loopback(url)


def test_the_run_is_bounded(capsys):
    for args in (["--clients", "0"], ["--clients", "1000"], ["--requests", "5000"], ["--max-seconds", "0"]):
        with pytest.raises(SystemExit):
            load.main(args)
    assert "--clients must be 1 to 256" in capsys.readouterr().err


def test_a_full_queue_answers_busy_try_again_with_retry_after():
    import app

    response = app.busy(None, HTTPException(503, "Queue is full. Max size is 64 and size is 64."))
    assert response.status_code == 503 and response.headers["retry-after"] == "60"
    assert json.loads(response.body)["detail"] == ("The app is busy, try again in a minute "
                                                   "(Queue is full. Max size is 64 and size is 64.)")
    other = app.busy(None, HTTPException(503, "Queue is stopped."))
    assert json.loads(other.body)["detail"] == "Queue is stopped."

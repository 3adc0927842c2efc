"""The Python API against the CLI: same rows and same numbers on the same inputs, every input
form, per-token statistics, errors with the CLI's messages, progress and interruption."""

from __future__ import annotations

import _thread
import json
import threading
import time

import pytest

import hesnr
from conftest import REPO, read_rows, run_cli, same_summary, without_nulls

CODE = REPO / "examples" / "code.jsonl"
TRAJECTORIES = REPO / "examples" / "trajectories" / "chat.jsonl"


def cli_score(cli, tmp_path, inputs, *flags):
    rows, summary = tmp_path / "cli-rows.jsonl", tmp_path / "cli-summary.json"
    run_cli(cli, "score", *inputs, "-o", rows, "--summary", summary, *flags)
    return read_rows(rows), json.loads(summary.read_text())


def test_score_equals_the_cli_on_the_same_file(cli, tiny, tmp_path):
    flags = ["--model", tiny, "--k", "5", "--window", "64"]
    want_rows, want_summary = cli_score(cli, tmp_path, [CODE], *flags)
    rows, summary = hesnr.score(CODE, model=tiny, k=5, window=64, progress=False)
    assert rows.num_rows == len(want_rows) == 5
    assert [without_nulls(r) for r in rows.to_pylist()] == [without_nulls(r) for r in want_rows]
    same_summary(summary, want_summary)


def test_score_equals_the_cli_on_the_default_model(cli, real_model, tmp_path):
    want_rows, want_summary = cli_score(cli, tmp_path, [CODE])
    rows, summary = hesnr.score(CODE, progress=False)
    assert [without_nulls(r) for r in rows.to_pylist()] == [without_nulls(r) for r in want_rows]
    assert summary["model"]["path"] == str(real_model)
    same_summary(summary, want_summary)


def records():
    return [json.loads(line) for line in CODE.read_text().splitlines()]


def scores(table):
    """What scoring a record gives, apart from where it was read from."""
    return [
        {k: v for k, v in r.items() if k not in ("source", "line")} for r in table.to_pylist()
    ]


def test_every_input_form_scores_like_the_file(tiny):
    want = scores(hesnr.score(CODE, model=tiny, progress=False).rows)
    recs = records()
    datasets = pytest.importorskip("datasets")
    pandas = pytest.importorskip("pandas")
    forms = {
        "records": recs,
        "generator": (r for r in recs),
        "dataset": datasets.Dataset.from_list(recs),
        "dataframe": pandas.DataFrame(recs),
    }
    for name, data in forms.items():
        got = hesnr.score(data, model=tiny, progress=False)
        assert scores(got.rows) == want, name
        assert got.rows.column("source").to_pylist() == ["<stdin>"] * len(recs), name
        assert got.rows.column("line").to_pylist() == list(range(1, len(recs) + 1)), name
    # Texts alone: the ids are the CLI's (`<stdin>:line`), the numbers the same.
    texts = hesnr.score([r["text"] for r in recs], model=tiny, progress=False)
    assert [
        {k: v for k, v in r.items() if k != "id"} for r in scores(texts.rows)
    ] == [{k: v for k, v in r.items() if k not in ("id", "metadata")} for r in want]
    assert texts.rows.column("id").to_pylist()[0] == "<stdin>:1"


def test_a_dataset_with_other_columns_and_another_text_field(tiny):
    datasets = pytest.importorskip("datasets")
    recs = records()
    ds = datasets.Dataset.from_list(
        [{"content": r["text"], "doc_id": r["id"], "stars": 3} for r in recs]
    )
    got = hesnr.score(ds, model=tiny, text_field="content", id_field="doc_id", progress=False)
    want = hesnr.score(CODE, model=tiny, progress=False).rows
    assert got.rows.column("id").to_pylist() == want.column("id").to_pylist()
    assert got.rows.column("he_snr").to_pylist() == want.column("he_snr").to_pylist()
    assert "stars" not in got.rows.column_names


def test_rows_convert_to_pandas(tiny):
    pd = pytest.importorskip("pandas")
    rows, _ = hesnr.score(CODE, model=tiny, progress=False)
    df = rows.to_pandas()
    assert isinstance(df, pd.DataFrame)
    assert list(df["id"]) == [r["id"] for r in records()]


def test_token_stats_equal_the_cli_trace(cli, tiny, tmp_path):
    text = records()[0]["text"]
    (tmp_path / "one.jsonl").write_text(json.dumps({"id": "text", "text": text}) + "\n")
    trace = tmp_path / "trace.jsonl"
    run_cli(cli, "score", tmp_path / "one.jsonl", "--model", tiny, "--tokens", trace, "--json")
    want = read_rows(trace)
    got = hesnr.token_stats(text, model=tiny)
    assert got.num_rows == len(want) > 10
    cols = got.to_pydict()
    for i, w in enumerate(want):
        assert cols["pos"][i] == w["pos"]
        assert cols["token"][i] == w["token"]
        assert [cols["start"][i], cols["end"][i]] == w["offset"]
        assert [cols["char_start"][i], cols["char_end"][i]] == w["char_offset"]
        for k in ("h10", "p_true", "nll", "rank", "decision", "entropy", "topk_mass"):
            assert cols[k][i] == w[k], k
        assert list(zip(cols["top_tokens"][i], cols["top_probs"][i])) == [tuple(t) for t in w["top"]]
    # Offsets index the text itself (characters, as Python's str does).
    last = want[-1]
    assert text[cols["char_start"][-1] : cols["char_end"][-1]] != "" or last["token"] == ""
    assert got["h10"].to_numpy().shape == (len(want),)


def test_an_unreadable_record_is_skipped_with_its_line_and_field(tiny):
    recs = [{"id": "a", "text": "def f():\n    return 1\n"}, {"id": "b", "body": "x"}, {"id": "c", "text": "x = 1\n"}]
    rows, summary = hesnr.score(recs, model=tiny, progress=False)
    assert rows.column("id").to_pylist() == ["a", "c"]
    assert summary["skipped"] == 1
    assert summary["errors"][0].startswith("<stdin>:2: field 'text'"), summary["errors"]


def test_errors_arrive_with_the_cli_message(tiny, tmp_path):
    missing = tmp_path / "nope.gguf"
    with pytest.raises(hesnr.HesnrError) as e:
        hesnr.score(["x = 1\n"], model=missing, progress=False)
    assert str(missing) in str(e.value)
    with pytest.raises(hesnr.HesnrError, match="--bogus"):
        hesnr.score(["x = 1\n"], model=tiny, bogus=3, progress=False)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a"}\n{"text": \n')
    _, summary = hesnr.score(bad, model=tiny, progress=False)
    assert summary["errors"][0].startswith(f"{bad}:2:"), summary["errors"]
    with pytest.raises(TypeError, match="output"):
        hesnr.score(["x"], model=tiny, output="x.jsonl")


def test_progress_reaches_a_callback(tiny):
    seen = []
    rows, _ = hesnr.score(CODE, model=tiny, progress=seen.append)
    assert seen, "no progress reported"
    assert seen[-1]["done"] == rows.num_rows
    assert all(a["done"] <= b["done"] for a, b in zip(seen, seen[1:]))


def test_an_interrupt_stops_the_run_and_its_process(tiny, monkeypatch):
    children = []
    real_init = hesnr._runner.Child.__init__

    def spy(self, *a, **k):
        real_init(self, *a, **k)
        children.append(self)

    monkeypatch.setattr(hesnr._runner.Child, "__init__", spy)
    endless = ({"id": str(i), "text": "def f(x):\n    return x * 2\n" * 20} for i in range(10**6))
    timer = threading.Timer(2.0, _thread.interrupt_main)
    timer.start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        hesnr.score(endless, model=tiny, progress=False)
    timer.cancel()
    assert time.monotonic() - started < 30
    assert children and children[0].proc.poll() is not None, "the hesnr process still runs"


def test_eval_equals_the_cli(cli, tiny, tmp_path):
    rows_p, summary_p = tmp_path / "rows.jsonl", tmp_path / "summary.json"
    run_cli(cli, "eval", "-T", TRAJECTORIES, "--model", tiny, "--preset", "full,action", "-o", rows_p, "--summary", summary_p)
    rows, summary = hesnr.eval(TRAJECTORIES, preset=["full", "action"], model=tiny, progress=False)
    assert [without_nulls(r) for r in rows.to_pylist()] == [without_nulls(r) for r in read_rows(rows_p)]
    same_summary(summary, json.loads(summary_p.read_text()))
    # The same trajectories as records (a dataset of chat records) give the same numbers.
    recs = [json.loads(line) for line in TRAJECTORIES.read_text().splitlines() if line.strip()]
    # Asked for `full` alone: its rows are the same whatever else was asked for (docs/method.md,
    # "Short documents packed").
    again, _ = hesnr.eval(recs, preset=["full"], model=tiny, progress=False)
    full = [r for r in rows.to_pylist() if r["preset"] == "full"]
    assert [r["he_snr"] for r in again.to_pylist() if r["preset"] == "full"] == [r["he_snr"] for r in full]


def test_profile_equals_the_cli(cli, tiny, tmp_path):
    out = tmp_path / "cli-profile"
    run_cli(cli, "profile", CODE, "--out", out, "--model", tiny)
    import pyarrow.parquet as pq

    want = pq.read_table(next(out.glob("profile-*.parquet")))
    got, stats = hesnr.profile(CODE, out=tmp_path / "py-profile", model=tiny, progress=False)
    assert got.equals(want)
    assert stats["documents"] == 5
    from_records, _ = hesnr.profile(records(), model=tiny, progress=False)
    assert from_records.column("he_snr").equals(want.column("he_snr"))


def test_track_returns_the_report_tables(tiny, tmp_path):
    second = hesnr._tiny_model(tmp_path / "tiny-2.gguf", seed=7)
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"model,step,score\n{tiny},100,0.1\n{second},200,0.2\n")
    result = hesnr.track(
        manifest, documents=[CODE], out=tmp_path / "report", cache=tmp_path / "cache", echo=False
    )
    assert result.html.is_file()
    checkpoints = result.tables["checkpoints"]
    assert checkpoints.num_rows == 2
    assert checkpoints.column("name").to_pylist() == [c["name"] for c in result.report["checkpoints"]]
    assert checkpoints.column("step").to_pylist() == [100, 200]
    assert "correlations" in result.tables

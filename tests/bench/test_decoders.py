"""bench.decoders on two files of its zoo: it reads them through every reader, finds auto right, and fails loudly
when auto reads a file with a decord that returns other frames than asked."""

import json

import pytest


def test_the_bench_reads_the_zoo_through_each_reader(tmp_path, capsys):
    from bench.decoders import main

    out = tmp_path / "decoders.json"
    assert main(["--formats", "h264.mp4,mpeg2.mpg", "--batches", "2", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = {r["file"]: r for r in report["rows"]}
    assert set(rows) == {"h264.mp4", "mpeg2.mpg"}
    for row in rows.values():
        assert row["pyav"]["wrong"] == row["auto"]["wrong"] == 0 and row["auto"]["asked"] == 16
    assert rows["mpeg2.mpg"]["auto"]["backend"] == "pyav" and "mpeg" in rows["mpeg2.mpg"]["auto_reason"]
    assert "| mpeg2.mpg | DVD (.vob), camcorders |" in capsys.readouterr().out


def test_the_bench_fails_when_auto_reads_a_file_wrong(tmp_path, monkeypatch, capsys):
    pytest.importorskip("decord")  # x86_64 wheels only
    from bench.decoders import main
    from vtr.data import video

    monkeypatch.setattr(video, "decord_unsuited", lambda source: None)  # auto as it was: decord for every file
    assert main(["--formats", "h264.ts", "--batches", "2", "--out", str(tmp_path / "d.json")]) == 1
    assert "auto read other frames than asked in: h264.ts" in capsys.readouterr().err

"""bench.filtered_search on a small catalog: it runs, and the store's filtered search and the catalog's agree."""

import json


def test_the_bench_runs_and_both_ways_return_the_same_windows(tmp_path, capsys):
    from bench.filtered_search import main

    out = tmp_path / "filtered.json"
    assert main(["--windows", "1500", "--repeats", "1", "--k", "20", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    kept = [r["kept"] for r in report["rows"]]  # all, half, a twentieth (whole files: 50 windows each)
    assert kept[:2] == [1500, 750] and 0 < kept[2] <= 75
    assert all(r["catalog_ms"] > 0 and r["Flat_ms"] > 0 for r in report["rows"])
    assert "every row: the same 20 windows from all three" in capsys.readouterr().out

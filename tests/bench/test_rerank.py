import json

from bench.rerank import main


def test_rerank_bench_times_each_batch_and_the_scores_agree(tmp_path, capsys):
    out = tmp_path / "rerank.json"
    assert main(["--model", "vtr_test", "--seconds", "24", "--windows", "5", "--batches", "1", "3", "--repeats", "1",
                 "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert [r["batch"] for r in report["rows"]] == [1, 3] and all(r["call_s"] > 0 for r in report["rows"])
    assert report["max_score_diff"] < 1e-4
    assert "| 3 |" in capsys.readouterr().out

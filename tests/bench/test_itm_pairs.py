import json

from bench.itm_pairs import main


def test_itm_pairs_bench_writes_both_paths_and_they_agree(tmp_path, capsys):
    out = tmp_path / "itm_pairs.json"
    assert main(["--model", "vtr_test", "--videos", "1", "3", "--batch", "6", "--dtypes", "fp32", "--repeats", "1",
                 "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["dtype"], r["videos"]) for r in rows] == [("fp32", 1), ("fp32", 3)]
    times = ("pair_by_pair_s", "gathered_s", "shared_once_s", "cls_only_s", "trimmed_s")
    assert all(r["max_abs_diff"] < 1e-5 and r["pooling"] == "cls" and all(r[t] > 0 for t in times) for r in rows)
    assert "| fp32 | 3 |" in capsys.readouterr().out


def test_itm_pairs_train_mode_times_the_three_ways_of_the_ranking_step(tmp_path):
    out = tmp_path / "train.json"
    assert main(["--train", "--model", "vtr_test", "--batch", "6", "--repeats", "1", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 6 and {r["directions"] for r in rows} == {"t2v", "t2v + v2t"}
    assert all(r["step_s"] > 0 for r in rows)

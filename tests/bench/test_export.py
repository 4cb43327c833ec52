"""bench.export on the smallest cases: it runs, the transcoded export and the copied one show the same frames, the
copy the source's own pixels (and a camera's PCM sound as AAC), an HEVC source is copied as recorded only, and it
writes the table and its JSON."""

import json


def test_the_bench_runs_and_the_copy_keeps_the_source_pixels(tmp_path, capsys, monkeypatch):
    import bench.export as bench

    monkeypatch.setitem(bench.SOURCES, "tiny", (96, 64, 30, None, ".mp4"))
    monkeypatch.setitem(bench.SOURCES, "tinypcm", (96, 64, 30, "pcm_s16le", ".MOV"))
    monkeypatch.setitem(bench.SOURCES, "tinyhevc", (96, 64, 30, "aac", ".MOV", "libx265"))
    out = tmp_path / "export.json"
    assert bench.main(["--sources", "tiny,tinypcm,tinyhevc", "--seconds", "22", "--repeats", "1",
                       "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    for row in report["rows"]:
        before, now, recorded = row["transcoded"], row["now"], row["recorded"]
        assert before["frames"] == now["frames"] == recorded["frames"] == 240  # 8 s at 30 fps, every way
        assert not before["copied"] and not before["same_pixels"] and before["psnr"] > 30
        assert recorded["copied"] and recorded["same_pixels"] and recorded["packets"] > recorded["frames"]
        if row["source"] != "tinyhevc":
            assert now["copied"] and now["packets"] > now["frames"] and now["same_pixels"] and now["psnr"] is None
    assert report["rows"][1]["now"]["sound"] == "aac"
    assert not report["rows"][2]["now"]["copied"]  # HEVC: transcoded to H.264 unless as recorded
    printed = capsys.readouterr().out
    assert "| tiny | " in printed and "| copied, sound to AAC |" in printed and "| same pixels |" in printed
    assert "| tinyhevc | " in printed

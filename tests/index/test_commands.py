import json

import pytest

from index.commands import build_command, search_command, status_command, update_command
from tests.index.media import make_video
from vtr.errors import VtrError


def test_cli_functions_end_to_end(tmp_path, test_model_folder, capsys):
    root = tmp_path / "videos"
    make_video(root / "a.mp4", 10, seed=5)
    (root / "bad.mp4").write_bytes(b"junk")
    idx = str(tmp_path / "idx")
    assert build_command([str(root)], index=idx, model=str(test_model_folder), workers=0) == 0
    assert update_command(index=idx, workers=0) == 0  # the manifest's model folder is used again
    capsys.readouterr()
    assert status_command(index=idx) == 0
    out = capsys.readouterr().out
    assert "1 files" in out and "bad.mp4" in out
    assert search_command(str(root / "a.mp4"), index=idx, k=1, json=True) == 0
    hits = json.loads(capsys.readouterr().out)
    assert hits[0]["path"] == str(root / "a.mp4")
    with pytest.raises(VtrError, match="--index"):
        status_command()


def test_a_file_name_with_a_newline_stays_on_one_printed_line(tmp_path, test_model_folder, capsys):
    """Each printed result is one line (a newline in a name split it in two); --json keeps names as they are."""
    root = tmp_path / "videos"
    make_video(root / "new\nline.mp4", 10, seed=5)
    make_video(root / "café 🎬.mp4", 10, seed=6)
    (root / "bad\tone.mp4").write_bytes(b"junk")
    idx = str(tmp_path / "idx")
    assert build_command([str(root)], index=idx, model=str(test_model_folder), workers=0) == 0
    assert "  failed: " + str(root / "bad\\tone.mp4") in capsys.readouterr().out
    assert search_command("anything", index=idx, k=4) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(line[:4].strip().rstrip(".").isdigit() for line in lines), lines
    assert any(line.endswith("new\\nline.mp4") for line in lines)
    assert any(line.endswith("café 🎬.mp4") for line in lines)  # printable names as they are
    assert status_command(index=idx) == 0
    assert "  " + str(root / "bad\\tone.mp4") + ": " in capsys.readouterr().out
    assert search_command("anything", index=idx, k=4, json=True) == 0
    assert str(root / "new\nline.mp4") in {hit["path"] for hit in json.loads(capsys.readouterr().out)}

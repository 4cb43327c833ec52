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

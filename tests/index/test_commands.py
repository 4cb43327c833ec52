import json
from pathlib import Path

import av
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
    from index.catalog import Catalog
    from index.dates import local_time

    catalog = Catalog(tmp_path / "idx" / "catalog.sqlite")
    last = max(f.indexed_at for f in catalog.files())  # bad.mp4 failed after a.mp4, or before: the later of the two
    catalog.close()
    assert f" windows; the last on {local_time(last)}\nrecorded" in out  # a date shown, not a timing
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


def test_search_export_cuts_the_moments_found_into_a_folder(tmp_path, test_model_folder, capsys):
    from index.dates import recorded_at

    root = tmp_path / "videos"
    make_video(root / "a.mp4", 10, seed=5, tags={"creation_time": "2023-07-14T13:30:12.000000Z"})
    make_video(root / "b.mp4", 10, seed=6, tags={"creation_time": "2021-02-03T04:05:06.000000Z"})
    idx = str(tmp_path / "idx")
    assert build_command([str(root)], index=idx, model=str(test_model_folder), workers=0) == 0
    capsys.readouterr()
    clips = tmp_path / "clips"
    assert search_command("anything", index=idx, k=3, json=True, export=str(clips)) == 0
    hits = json.loads(capsys.readouterr().out)
    assert len(hits) == 3 and sorted(p.name for p in clips.iterdir()) == sorted(Path(h["exported"]).name
                                                                                    for h in hits)
    for h in hits:
        with av.open(h["exported"]) as c:  # each clip as long as its moment (media time, not wall time)
            assert c.duration / 1e6 == pytest.approx(h["end"] - h["start"], abs=0.15)
            assert c.metadata["comment"] == f"vtr: {h['path']} {h['start']:.3f}-{h['end']:.3f}"
        # dated when the moment was recorded: its video's recording date plus its start
        assert recorded_at(h["exported"]) == (h["recorded"] + h["start"], "metadata")
    # the first moment's video is gone: the others are still exported, the lost one is said, the exit code is 1
    gone = Path(hits[0]["path"])
    gone.rename(tmp_path / "away.mp4")
    again = tmp_path / "again"
    assert search_command("anything", index=idx, k=3, export=str(again)) == 1
    out = capsys.readouterr().out
    lost = sum(1 for h in hits if h["path"] == str(gone))
    assert f"exported {3 - lost} of 3 moments to {again}" in out
    assert out.count("not exported: ") == lost and len(list(again.iterdir())) == 3 - lost
    # a folder that cannot be made: said before the index opens (its model loaded for nothing)
    (tmp_path / "note.txt").write_text("x")
    with pytest.raises(VtrError, match="cannot export into .*note.txt/clips: Not a directory"):
        search_command("anything", index=str(tmp_path / "no-index"), export=str(tmp_path / "note.txt" / "clips"))
    # --export-as: recorded, as the clips' tags say (the moments' own packets: tests/data/test_cut.py); an unknown
    # kind, or one without --export, is said before the index opens
    (tmp_path / "away.mp4").rename(gone)
    recorded = tmp_path / "recorded"
    assert search_command("anything", index=idx, k=2, json=True, export=str(recorded), export_as="recorded") == 0
    for h in json.loads(capsys.readouterr().out):
        with av.open(h["exported"]) as c:
            assert c.metadata["comment"] == f"vtr: {h['path']} {h['start']:.3f}-{h['end']:.3f} as recorded"
    for export, export_as, said in ((str(again), "hevc", "--export-as takes h264 or recorded, not 'hevc'"),
                                    (None, "recorded", "name their folder with --export DIR")):
        with pytest.raises(VtrError, match=said):
            search_command("anything", index=str(tmp_path / "no-index"), export=export, export_as=export_as)


def test_search_and_remove_without_faiss_say_so(tmp_path, test_model_folder, monkeypatch):
    """A plain install lacks faiss (`vtr[index]`): a search and a removal say so, and remove nothing."""
    import sys

    from index.build import remove_from_index

    make_video(tmp_path / "videos" / "a.mp4", 4, seed=1)
    idx = str(tmp_path / "idx")
    assert build_command([str(tmp_path / "videos")], index=idx, model=str(test_model_folder), workers=0) == 0
    monkeypatch.setitem(sys.modules, "faiss", None)  # its import fails as a missing module's does
    with pytest.raises(VtrError, match="pip install 'faiss-cpu>=1.8'"):
        search_command("a red circle", index=idx)
    before = (tmp_path / "idx" / "catalog.sqlite").read_bytes()
    with pytest.raises(VtrError, match="pip install 'faiss-cpu>=1.8'"):
        remove_from_index([str(tmp_path / "videos" / "a.mp4")], idx)
    assert (tmp_path / "idx" / "catalog.sqlite").read_bytes() == before  # nothing taken out


def test_paths_and_sentences_longer_than_a_file_name(tmp_path, test_model_folder, capsys):
    """Each was an ``OSError: File name too long`` traceback: a query of more than 255 bytes, checked for being an
    example's path, and an index or folder named that long."""
    make_video(tmp_path / "videos" / "a.mp4", 4, seed=1)
    idx = str(tmp_path / "idx")
    assert build_command([str(tmp_path / "videos")], index=idx, model=str(test_model_folder), workers=0) == 0
    capsys.readouterr()
    sentence = "a person walks along the beach at sunset and then " * 8  # 408 bytes: words, not a path
    assert search_command(sentence, index=idx, k=1) == 0
    assert capsys.readouterr().out.startswith("  1. ")
    too_long = str(tmp_path / ("x" * 300))
    with pytest.raises(VtrError, match="is not an index folder"):
        status_command(index=too_long)
    with pytest.raises(VtrError, match="is not an index folder"):
        search_command("anything", index=too_long)
    with pytest.raises(VtrError, match="is not a folder or a file"):
        build_command([too_long], index=idx)


def test_a_mistyped_folder_is_said_before_an_index_is_made_or_a_model_loads(tmp_path):
    """Before, the model loaded (the default: a 1 GB download the first time) and an empty index of it was left."""
    new = tmp_path / "new.idx"
    with pytest.raises(VtrError, match=f"^{tmp_path / 'Vidoes'} is not a folder or a file$"):
        build_command([str(tmp_path / "Vidoes")], index=str(new), model="no-such-model")
    assert not new.exists()


def test_a_file_named_alone_that_is_no_video_is_said_before_an_index_is_made(tmp_path):
    """`vtr index build photo.jpg`, a document, a GIF of one frame or a TypeScript file: each was an index of
    nothing, made with the model loaded and no word why. Now the command says what the file is and what vtr
    indexes, before anything is made; an animated GIF or a motion photo named alone is indexed."""
    from tests.videos import indexed_frames, write_gif, write_motion_photo, write_photo

    cases = {"IMG_0042.jpg": "is a photo with no video in it, not a video: vtr indexes a photo when it is a motion "
                             "photo \\(a Pixel's .MP.jpg, a Galaxy's motion photo\\)$",
             "notes.txt": "is not a video file: vtr indexes the extensions .264, .265, .3g2, .3gp, .*, animated .apng, "
                          ".avif, .gif, .png, .webp files, and motion photos \\(.avif, .heic, .heif, .jpeg, .jpg "
                          "holding a video\\)$",
             "spacer.gif": "is a still picture \\(a single frame\\), not a video: vtr indexes a GIF, PNG, WebP or "
                           "AVIF when it is animated$",
             "screenshot.png": "is a still picture \\(a single frame\\)",
             "main.ts": "is text \\(source code such as TypeScript\\), not an MPEG-TS video$"}
    write_photo(tmp_path / "IMG_0042.jpg", indexed_frames(1)[0])
    (tmp_path / "notes.txt").write_text("a list of things")
    write_gif(tmp_path / "spacer.gif", indexed_frames(1))
    write_photo(tmp_path / "screenshot.png", indexed_frames(1)[0])
    (tmp_path / "main.ts").write_text("export const answer: number = 42;\n")
    new = tmp_path / "new.idx"
    for name, says in cases.items():
        with pytest.raises(VtrError, match=f"^{tmp_path / name} {says}"):
            build_command([str(tmp_path / name)], index=str(new), model="no-such-model")
        assert not new.exists()
    write_gif(tmp_path / "dance.gif", indexed_frames(20))
    write_motion_photo(tmp_path / "PXL_1.MP.jpg", indexed_frames(1)[0], indexed_frames(20))
    for taken in ("dance.gif", "PXL_1.MP.jpg"):
        with pytest.raises(VtrError, match="no-such-model"):  # taken: the next step is loading the model
            build_command([str(tmp_path / taken)], index=str(new), model="no-such-model")


def test_an_interrupted_build_says_how_to_go_on(tmp_path, monkeypatch):
    """Ctrl-C (or SIGTERM, as Ctrl-C) in a build or an update: the message says what is kept and the command that
    goes on; before it was "interrupted" alone."""
    import index.commands as commands

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "build_index", interrupted)
    expected = r"^interrupted: the windows embedded so far are kept; `vtr index update --index .*/idx` goes on"
    with pytest.raises(KeyboardInterrupt, match=expected):
        build_command([str(tmp_path)], index=str(tmp_path / "idx"))
    with pytest.raises(KeyboardInterrupt, match=expected):
        update_command(index=str(tmp_path / "idx"))

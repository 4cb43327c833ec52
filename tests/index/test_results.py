"""How many results a search returns, and what it says about the query."""

import numpy as np
import pytest

from index.build import build_index
from index.search import VideoIndex
from tests.index.media import make_video


@pytest.fixture(scope="module")
def many_windows(tmp_path_factory, test_model):
    root = tmp_path_factory.mktemp("videos")
    for i in range(4):
        make_video(root / f"v{i}.mp4", 40, seed=40 + i)  # 9 windows each
    idx = tmp_path_factory.mktemp("idx") / "idx"
    build_index([str(root)], str(idx), model=test_model, workers=0, progress=False, window_policy="stride")
    return idx


def test_rerank_returns_as_many_moments_as_asked(many_windows, test_model):
    with VideoIndex(str(many_windows), model=test_model, gpu=False) as vi:
        plain = vi.search("people walking on a beach", k=24, merge_margin=0.0)
        reranked = vi.search("people walking on a beach", k=24, rerank=True, merge_margin=0.0)
    assert len(plain) == 24
    assert len(reranked) == 24  # the ITM candidates widen until they make 24 moments (it stopped at 20 windows)
    scores = [s.score for s in reranked]
    assert scores == sorted(scores, reverse=True)


def test_rerank_says_once_per_file_which_moments_it_left_out(tmp_path, test_model, caplog, monkeypatch):
    """A file gone since indexing (a drive unplugged) is tried once and named once with its count, after the
    progress bar, not once per window; a stretch of a present file that no longer decodes costs only its own
    windows."""
    import vtr.data.video
    from vtr.errors import VideoReadError

    root = tmp_path / "videos"
    for i in range(3):
        make_video(root / f"v{i}.mp4", 40, seed=60 + i)
    idx = tmp_path / "idx"
    build_index([str(root)], str(idx), model=test_model, workers=0, progress=False, window_policy="stride")
    (root / "v1.mp4").unlink()
    opened, failed = [], []
    real_open = vtr.data.video.open_video

    def open_video(path, **kwargs):  # v2.mp4 opens, but every other window of it no longer decodes
        opened.append(str(path))
        reader = real_open(path, **kwargs)
        if str(path).endswith("v2.mp4"):
            get_frames = reader.get_frames

            def damaged(indices, *args, **kw):
                if opened.count(str(path)) % 2:
                    failed.append(indices)
                    raise VideoReadError(path, "damaged")
                return get_frames(indices, *args, **kw)

            reader.get_frames = damaged
        return reader

    monkeypatch.setattr(vtr.data.video, "open_video", open_video)
    with VideoIndex(str(idx), model=test_model, gpu=False) as vi:
        ids = vi.catalog.window_ids()
        paths = [vi.catalog.windows_by_ids(ids)[i][1].path for i in ids]
        caplog.clear()
        kept, scores = vi._rerank(vi.encode_text("a walk")[1], ids)
    gone, v2 = paths.count(str(root / "v1.mp4")), paths.count(str(root / "v2.mp4"))
    assert gone > 1 and opened.count(str(root / "v1.mp4")) == 1  # tried once
    assert 0 < len(failed) < v2 and len(kept) == len(ids) - gone - len(failed)
    warnings = [r.getMessage() for r in caplog.records if r.getMessage().startswith("rerank:")]
    assert len(warnings) == 2
    assert warnings[0].startswith(f"rerank: {gone} moments of {root / 'v1.mp4'} left out, the file cannot be read "
                                  "now: ") and "v1.mp4" in warnings[0].split("read now: ")[1]
    assert warnings[1].startswith(f"rerank: {len(failed)} moment{'s' if len(failed) > 1 else ''} of "
                                  f"{root / 'v2.mp4'} left out, its frames cannot be read now: ")
    assert "damaged (at " in warnings[1]


def test_rerank_scores_windows_in_batches_as_one_by_one(tmp_path, test_model):
    """The re-ranking encodes several windows per call; windows of videos of other sizes stack at the model's
    size, and every score is the one the window gets alone."""
    from tests.index.media import textured_frames
    from tests.videos import write_video

    root = tmp_path / "videos"
    root.mkdir()
    write_video(root / "small.mp4", textured_frames(12, 1, height=48, width=64), fps=10)
    write_video(root / "wide.mp4", textured_frames(12, 2, height=36, width=96), fps=10)
    idx = tmp_path / "idx"
    build_index([str(root)], str(idx), model=test_model, workers=0, progress=False, window_policy="stride")
    with VideoIndex(str(idx), model=test_model, gpu=False) as vi:
        ids = vi.catalog.window_ids()
        text = vi.encode_text("a walk")[1]
        alone, together = vi._rerank(text, ids, batch=1), vi._rerank(text, ids, batch=3)
        assert {vi.catalog.windows_by_ids(ids)[i][1].path for i in ids} == {str(root / "small.mp4"),
                                                                              str(root / "wide.mp4")}
    assert len(ids) > 3 and list(together[0]) == list(alone[0]) == list(ids)
    np.testing.assert_allclose(together[1], alone[1], rtol=1e-5, atol=1e-5)


def test_a_query_longer_than_the_model_reads_is_flagged(many_windows, test_model):
    with VideoIndex(str(many_windows), model=test_model, gpu=False) as vi:
        assert vi.query_notes("a dog catches a frisbee on the beach") == []
        long = " ".join(["a dog catches a red frisbee"] * 10)  # 60 words
        [note] = vi.query_notes(long)
        limit = test_model.preprocess.max_txt_l
        assert f"reads only the first {limit}" in note and "tokens long" in note
        assert "searched for “a dog catches" in note


def test_words_the_vocabulary_has_no_token_for_are_flagged(many_windows, test_model):
    """An emoji or a script the vocabulary lacks reads as [UNK]: the search runs, and the page and the CLI say so."""
    with VideoIndex(str(many_windows), model=test_model, gpu=False) as vi:
        [note] = vi.query_notes("a dog 🐶 on the beach")
        assert note == "The model has no word for “🐶”: it searched for the rest of the query."
        [note] = vi.query_notes("🐶🏖\ufe0f")  # the emoji's invisible variation selector is not shown
        assert note.startswith("The model has no word for “🐶🏖”, so the query says nothing it can search for.")
        assert vi.query_notes("ein Hund am Strand") == []  # foreign words still have word pieces


def test_suggestions_come_from_the_index(many_windows, test_model):
    with VideoIndex(str(many_windows), model=test_model, gpu=False) as vi:
        first = vi.suggest_queries(3)
        assert len(first) == 3 and len(set(first)) == 3
        vectors, _ = vi.encode_text(first)
        import numpy as np

        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        best = vi.store.search(vectors, 1)[0][:, 0]
        assert list(best) == sorted(best, reverse=True)  # the best-matched phrases first


def test_the_collections_own_queries_are_suggested_by_score(many_windows, test_model, tmp_path):
    """queries.txt in the index folder (the demo writes its clips' captions there) adds candidates to the
    everyday list; all of them are ranked by how well the index matches them."""
    import shutil

    import numpy as np

    from index.layout import read_queries, write_queries
    from index.search import COMMON_QUERIES

    idx = tmp_path / "idx"
    shutil.copytree(many_windows, idx)
    write_queries(idx, ["  a striped test pattern drifts ", "", "a striped test pattern drifts", COMMON_QUERIES[0]])
    own = read_queries(idx)
    assert own == ["a striped test pattern drifts", COMMON_QUERIES[0]]  # stripped, blank lines and repeats dropped
    with VideoIndex(str(idx), model=test_model, gpu=False) as vi:
        offered = vi.suggest_queries(10_000)
        assert sorted(offered) == sorted(set(own) | set(COMMON_QUERIES))  # each candidate once
        vectors, _ = vi.encode_text(offered)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        best = vi.store.search(vectors, 1)[0][:, 0]
        assert list(best) == sorted(best, reverse=True)
    with VideoIndex(str(many_windows), model=test_model, gpu=False) as vi:  # no queries.txt: the everyday list
        assert sorted(vi.suggest_queries(10_000)) == sorted(COMMON_QUERIES)


def test_no_rerank_with_an_untrained_matching_head(many_windows, test_model):
    """A model whose config says its matching head was not trained offers no re-ranking: it would order moments
    worse than the search itself."""
    import copy

    from vtr.errors import VtrError

    untrained = copy.deepcopy(test_model)
    untrained.cfg.itm_trained = False
    with VideoIndex(str(many_windows), model=untrained, gpu=False) as vi:
        assert not vi.can_rerank
        assert vi.search("a red ball", k=3)  # plain search works
        with pytest.raises(VtrError, match="no trained matching head"):
            vi.search("a red ball", k=3, rerank=True)
    with VideoIndex(str(many_windows), model=test_model, gpu=False) as vi:
        assert vi.can_rerank and vi.search("a red ball", k=3, rerank=True)

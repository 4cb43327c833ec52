"""The app's programmatic API, through gradio_client, on a small generated index."""

import math

import pytest

from tests.index.media import textured_frames
from tests.videos import write_jpeg, write_video


@pytest.fixture(scope="module")
def client(running_app):
    from gradio_client import Client

    return Client(running_app.url, verbose=False, download_files=False)


def search(client, query="", example=None, folder="", min_duration=None, max_duration=None, rerank=False, k=10):
    from gradio_client import handle_file

    return client.predict(query, handle_file(str(example)) if example else None, folder, min_duration, max_duration,
                          rerank, k, api_name="/search")


def library_search(index, model, query, **kwargs):
    """What the library answers on the app's index: the app must show exactly these moments."""
    from index.search import VideoIndex

    with VideoIndex(str(index), model=model, gpu=False) as vi:
        return vi.search(query, **kwargs)


def same_moments(moments, segments):
    """The app's moments are the library's segments: the same spans and scores, the best one first."""
    assert sorted((m["video"], m["start"], m["end"]) for m in moments) == sorted((s.path, s.start, s.end)
                                                                              for s in segments)
    scores = {(s.path, s.start, s.end): s.score for s in segments}
    for m in moments:
        assert m["score"] == pytest.approx(scores[m["video"], m["start"], m["end"]], rel=1e-5)
    assert (moments[0]["video"], moments[0]["start"], moments[0]["end"]) == (segments[0].path, segments[0].start,
                                                                             segments[0].end)


def test_text_search_returns_moments_best_first(client, collection):
    moments = search(client, "a walk in the park", k=10)
    assert moments, "a text query on a non-empty index returns moments"
    assert {m["video"] for m in moments} <= {str(collection / n) for n in ("beach.mp4", "city.mp4", "trips/park.mp4")}
    for m in moments:
        assert set(m) == {"video", "name", "folder", "start", "end", "score", "copies", "recorded", "recorded_by"}
        assert m["recorded_by"] == "file" and math.isfinite(m["recorded"])  # generated files: no tags, no dated name
        assert 0 <= m["start"] < m["end"] and math.isfinite(m["score"])
    # best first across videos: grouping by video is a view of the page, never the ranking
    scores = [m["score"] for m in moments]
    assert scores == sorted(scores, reverse=True)
    assert len({m["video"] for m in moments}) > 1


def test_recording_dates_are_optional_keywords(client):
    """Programs written before the date filters call /search as they did; others name since / until."""
    assert search(client, "a walk in the park", k=3)
    assert client.predict("a walk in the park", None, "", None, None, False, 3, since="1990", until="1990-12",
                          api_name="/search") == []
    assert client.predict("a walk in the park", None, "", None, None, False, 3, since="1990", api_name="/search")
    with pytest.raises(Exception, match="Recorded from: 'x' is not a date"):
        client.predict("a walk", None, "", None, None, False, 3, since="x", api_name="/search")


def test_moments_like_a_search_result(client, collection):
    """/similar takes a /search result's video, start and end: the moments like it, that moment left out."""
    top = search(client, "a walk in the park", k=3)[0]
    like = client.predict(top["video"], top["start"], top["end"], api_name="/similar")
    assert like and set(like[0]) == set(top)
    for m in like:
        assert not (m["video"] == top["video"] and m["start"] < top["end"] and m["end"] > top["start"]), (m, top)
    assert len(client.predict(top["video"], top["start"], None, k=2, api_name="/similar")) == 2  # the second alone
    assert client.predict(top["video"], top["start"], top["end"], since="1990", until="1990",
                          api_name="/similar") == []
    with pytest.raises(Exception, match="not in this index"):
        client.predict(str(collection / "nowhere.mp4"), 1.0, api_name="/similar")


def test_query_by_example_clip_finds_its_video_and_span(client, collection, tmp_path):
    # seconds 8-16 of park.mp4, re-encoded: the same frames, so the same window vector
    clip = write_video(tmp_path / "clip.mp4", textured_frames(16, seed=3)[80:160], fps=10)
    top = search(client, example=clip, k=3)[0]
    assert top["video"] == str(collection / "trips" / "park.mp4")
    assert top["start"] <= 8.0 and top["end"] >= 16.0


def test_query_by_example_image(client, collection, built_index, app_model, tmp_path):
    # A still of beach.mp4 at 5 s. The tiny random-weight model does not reliably map a still to its own video,
    # so the right answer here is the library's (whose image search is checked against a known answer in
    # tests/index/test_search.py): the app must return the same videos, spans and scores, the same one first.
    image = write_jpeg(tmp_path / "still.jpg", textured_frames(16, seed=1)[50])
    moments = search(client, "ignored when an example is given", example=image, k=3)
    assert 1 <= len(moments) <= 3
    same_moments(moments, library_search(built_index, app_model, str(image), k=3, kind="example"))


def test_filters_and_rerank(client, collection, built_index, app_model):
    in_trips = search(client, "a walk", folder=str(collection / "trips"))
    assert in_trips and {m["name"] for m in in_trips} == {"park.mp4"}
    assert {m["name"] for m in search(client, "a walk", max_duration=13)} == {"city.mp4"}
    assert search(client, "a walk", min_duration=100) == []
    reranked = search(client, "a dog catches a frisbee", rerank=True, k=3)
    assert 1 <= len(reranked) <= 3 and all(math.isfinite(m["score"]) for m in reranked)
    # the matching head's order (checked against a known answer in tests/index/test_search.py), not the
    # contrastive one: the app passes rerank on
    expected = library_search(built_index, app_model, "a dog catches a frisbee", k=3, rerank=True, kind="text")
    same_moments(reranked, expected)
    plain = library_search(built_index, app_model, "a dog catches a frisbee", k=3, kind="text")
    assert [s.score for s in plain] != pytest.approx([s.score for s in expected])


def test_errors_come_back_as_readable_messages(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="Type what you are looking for"):
        search(client, "   ")
    with pytest.raises(AppError, match="minimum duration is longer"):
        search(client, "a walk", min_duration=20, max_duration=10)


def test_status_counts_and_failure_reasons(client, collection):
    st = client.predict(api_name="/status")
    assert st["model"] == "vtr_test" and st["files"] == 3 and st["windows"] > 3
    assert st["folders"] == [str(collection)] and st["missing_folders"] == []
    assert [f["path"] for f in st["failed"]] == [str(collection / "broken.mp4")]
    assert st["failed"][0]["reason"]


def test_an_unreadable_example_is_named_by_its_file_in_one_sentence(client, tmp_path):
    from gradio_client.exceptions import AppError

    fake = tmp_path / "holiday.mp4"
    fake.write_bytes(b"not a video at all, just text\n" * 50)
    with pytest.raises(AppError) as err:
        search(client, example=fake)
    msg = str(err.value)
    assert "The example holiday.mp4 cannot be used: not a video file, or damaged beyond reading." in msg
    assert "/tmp" not in msg and "Errno" not in msg and "decord" not in msg

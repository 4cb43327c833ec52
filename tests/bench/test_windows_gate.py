"""bench.windows_gate's ``shots-2pass``: the shots policy with its one decoding pass turned off, in this process."""

from index import decode


def test_shots_2pass_builds_shots_in_two_passes(tmp_path, monkeypatch):
    from bench.windows_gate import _passes
    from index.policies import DETECT_FPS
    from tests.index.test_policies import _b_frame_video

    path = str(_b_frame_video(tmp_path / "bframes.mp4"))
    settings = decode.DecodeSettings(num_frames=4, img_size=32, window_s=4.0, window_policy="shots")
    calls = []
    real = decode.plan_chunk_windows  # the two passes' planning (the one pass plans from its own frames)
    monkeypatch.setattr(decode, "plan_chunk_windows", lambda *a, **k: calls.append(a) or real(*a, **k))
    one = decode.decode_chunk(path, 0, settings)
    assert not calls
    with _passes("shots-2pass") as built:
        assert built == "shots"
        two = decode.decode_chunk(path, 0, settings)
    assert len(calls) == 1 and len(two.windows) == len(one.windows)
    assert max(abs(a - b) for w, v in zip(one.windows, two.windows) for a, b in zip(w, v)) <= 1 / DETECT_FPS
    with _passes("stride") as built:
        assert built == "stride"
        decode.decode_chunk(path, 0, settings)
    assert len(calls) == 1  # shots settings still decode in one pass outside "shots-2pass"

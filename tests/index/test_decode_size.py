"""Decoding at the size the model needs: the decoder scales large sources (short side 2·S) before Preprocess's
resize. Stated tolerance, for weights whose resize antialiases: mean absolute pixel difference ≤ 3/255 and window
embedding cosine ≥ 0.998 against the full-resolution path (measured: 1.8/255 and 0.9992 on 320×240 → 32²)."""

import dataclasses

import numpy as np
import pytest
import torch

from bench.index_throughput import make_footage
from index.decode import DecodeSettings, decode_chunk, decoder_size
from vtr.data.video import _decord_available, open_video

BACKENDS = ["pyav", pytest.param("decord", marks=pytest.mark.skipif(not _decord_available(), reason="no decord"))]


def test_decoder_size_rule():
    assert decoder_size(1280, 720, 224) == (796, 448)
    assert decoder_size(720, 1280, 224) == (448, 796)  # portrait: the short side is the width
    assert decoder_size(3840, 2160, 224) == (796, 448)
    assert decoder_size(640, 360, 224) is None  # not above 2·S: decoded as it is
    assert decoder_size(1920, 1080, 224, antialias=False) is None  # the release's aliasing resize: full frames


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    # blocky textures with hard edges, some panning: high frequencies where the two paths can differ most
    return make_footage(tmp_path_factory.mktemp("decode_size") / "f.mp4", 4, 320, 240, seed=3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_reader_scales_in_the_decoder(footage, backend):
    with open_video(footage, backend=backend) as r:
        assert (r.width, r.height) == (320, 240)  # metadata stays the source's
        full = r.get_frames([0, 30, 31])
        small = r.get_frames([0, 30, 31], size=(85, 64))
        again = r.get_frames([30], size=(85, 64))
        assert r.get_frames([], size=(85, 64)).shape == (0, 64, 85, 3)
        with pytest.raises(ValueError):
            r.get_frames([0], size=(0, 64))
    assert full.shape == (3, 240, 320, 3) and small.shape == (3, 64, 85, 3)
    assert torch.equal(again[0], small[1])
    # the same picture: the decoder's scale vs torch's antialiased resize of the full frame
    ref = torch.nn.functional.interpolate(full.permute(0, 3, 1, 2).float(), size=(64, 85), mode="bicubic",
                                          antialias=True).clamp(0, 255).permute(0, 2, 3, 1)
    assert (small.float() - ref).abs().mean() < 3.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_window_embeddings_within_tolerance_of_full_resolution(footage, backend, test_model, monkeypatch):
    import index.decode as dec
    import vtr.data.video as video

    real_open = video.open_video
    monkeypatch.setattr(video, "open_video", lambda src, **k: real_open(src, backend=backend))
    pre = dataclasses.replace(test_model.preprocess, antialias=True)
    frames = {}
    sizes = []
    real_size = dec.decoder_size
    monkeypatch.setattr(dec, "decoder_size", lambda *a: sizes.append(real_size(*a)) or sizes[-1])
    for scaled in (True, False):
        st = DecodeSettings(num_frames=pre.num_frames, img_size=pre.img_size, window_s=1.0, stride_s=1.0,
                            thumbnails=True, antialias=True, decoder_scale=scaled)
        res = decode_chunk(str(footage), 0, st)
        frames[scaled] = torch.from_numpy(res.frames)
        assert len(res.thumbnails) == len(res.windows) == 4
    assert sizes == [(85, 64)]  # 240 > 2·32: the scaled run asked the decoder for short side 64
    a, b = frames[True], frames[False]
    assert a.shape == b.shape == (4, pre.num_frames, 3, pre.img_size, pre.img_size)
    diff = (a.float() - b.float()).abs()
    assert diff.mean() <= 3.0 and diff.max() > 0  # really two paths, close
    with torch.inference_mode():
        ea = test_model.encode_video(pre.normalize(a)).embedding
        eb = test_model.encode_video(pre.normalize(b)).embedding
    cos = torch.nn.functional.cosine_similarity(ea, eb)
    assert cos.min() >= 0.998, cos
    # windows stay told apart: each scaled embedding is nearest its own full-resolution twin
    sim = torch.nn.functional.normalize(ea, dim=-1) @ torch.nn.functional.normalize(eb, dim=-1).T
    assert torch.equal(sim.argmax(1), torch.arange(len(ea)))
    assert np.isfinite(ea.numpy()).all()

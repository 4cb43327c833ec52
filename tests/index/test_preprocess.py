"""The index feeds the model exactly as evaluation does: one Preprocess (resize with the weights' antialias flag,
normalise, tokenise), recorded in the manifest."""

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from index.build import build_index, index_status
from index.layout import read_manifest
from index.catalog import Catalog
from index.windows import Window, window_frame_indices
from tests.index.media import make_video, textured_frames
from tests.videos import write_video
from vtr.data.video import open_video, read_frames
from vtr.errors import VtrError


def with_antialias(model, antialias: bool):
    m = copy.deepcopy(model)
    m.preprocess = dataclasses.replace(m.preprocess, antialias=antialias)
    m.cfg = dataclasses.replace(m.cfg, preprocess=m.preprocess)
    return m


def eval_embedding(model, path, window: Window) -> np.ndarray:
    """What `vtr eval` computes for these frames: the weights' eval transform, then encode_video."""
    pre = model.preprocess
    with open_video(path) as r:
        idx = window_frame_indices(window, r.clock(), pre.num_frames)
    x = pre.eval_transform()(read_frames(path, pre.num_frames, indices=idx))
    with torch.inference_mode():
        return model.encode_video(x[None]).embedding[0].numpy()


def index_vectors(idx) -> dict:
    cat = Catalog(Path(idx) / "catalog.sqlite")
    try:
        f = cat.files("ok")[0]
        return {(w.start, w.end): v for w, v in zip(cat.windows_of(f.id), cat.vectors_of(f.id))}
    finally:
        cat.close()


def test_window_vectors_equal_eval_embeddings_for_both_resize_settings(tmp_path, test_model):
    video = make_video(tmp_path / "videos" / "v.mp4", 12, seed=7)  # 64x48 frames, downscaled to 32: antialias matters
    got = {}
    for antialias in (True, False):
        model = with_antialias(test_model, antialias)
        idx = tmp_path / f"idx-{antialias}"
        # fp32, as the eval embedding below (auto would pick bf16 on a CPU with native bf16)
        build_index([str(video.parent)], str(idx), model=model, workers=1, progress=False, window_policy="stride",
                    precision="fp32")
        assert read_manifest(idx)["antialias"] is antialias
        vectors = index_vectors(idx)
        assert len(vectors) == 2
        for (start, end), vec in vectors.items():
            np.testing.assert_allclose(vec, eval_embedding(model, str(video), Window(start, end)), atol=1e-5)
        got[antialias] = vectors
        # a query by example goes through the same preprocessing: a window's own frames find it at cosine 1
        from index.search import VideoIndex

        with VideoIndex(str(idx), model=model, gpu=False) as vi:
            clip = write_video(tmp_path / f"clip-{antialias}.mp4", textured_frames(12, seed=7)[:80], fps=10)
            top = vi.search(str(clip), k=1, kind="example")[0]
            assert top.windows[0]["start"] == 0.0 and top.score > 0.999
    # the two settings really feed the model different pixels
    key = next(iter(got[True]))
    assert not np.allclose(got[True][key], got[False][key], atol=1e-4)


def test_manifest_without_antialias_reads_as_antialiased(tmp_path, test_model):
    video = make_video(tmp_path / "videos" / "v.mp4", 5, seed=8)
    idx = tmp_path / "idx"
    build_index([str(video.parent)], str(idx), model=with_antialias(test_model, True), workers=0, progress=False,
                window_policy="stride")
    path = idx / "manifest.json"
    old = json.loads(path.read_text())
    del old["antialias"]  # as written before the field existed
    path.write_text(json.dumps(old))
    assert read_manifest(idx)["antialias"] is True  # those builds always antialiased
    assert index_status(str(idx))["manifest"]["antialias"] is True
    # the same model updates it without complaint; one that does not antialias must re-embed
    build_index(None, str(idx), model=with_antialias(test_model, True), workers=0, progress=False)
    with pytest.raises(VtrError, match="antialias.*--reembed"):
        build_index(None, str(idx), model=with_antialias(test_model, False), workers=0, progress=False)

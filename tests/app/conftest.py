"""A small generated collection, its index (tiny random-weight model) and the app serving it on localhost."""

import os
import socket

import pytest

from tests.index.media import make_video

CHROMIUM = os.environ.get("VTR_TEST_CHROMIUM", "/usr/bin/chromium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_collection(root):
    """Three good videos (one in a sub-folder) and one file that is not a video."""
    make_video(root / "beach.mp4", 16, seed=1)
    make_video(root / "city.mp4", 12, seed=2)
    make_video(root / "trips" / "park.mp4", 16, seed=3)
    (root / "broken.mp4").write_bytes(b"this is not a video")
    return root


@pytest.fixture(scope="session")
def app_model():
    """The tiny random-weight model (the index pins its weights, so one object serves the whole session)."""
    import torch

    import vtr

    torch.manual_seed(4321)
    # itm_trained: its random matching head stands in for a trained one, so the re-rank path can be tested
    return vtr.create_model("vtr_test", itm_trained=True)


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    return make_collection(tmp_path_factory.mktemp("videos"))


@pytest.fixture(scope="module")
def built_index(collection, app_model, tmp_path_factory):
    from index import build_index

    idx = tmp_path_factory.mktemp("idx") / "videos.idx"
    build_index([str(collection)], str(idx), model=app_model, workers=0, progress=False, window_policy="stride")
    return idx


@pytest.fixture(scope="module")
def running_app(built_index, app_model):
    """The app on a free localhost port, serving ``built_index``."""
    from app.server import launch_app

    app = launch_app(str(built_index), port=free_port(), model=app_model, quiet=True,
                     build_options={"workers": 0})
    yield app
    app.close()


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium driven by Playwright. Missing pieces fail the test (CI installs them), never skip it."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"no browser at {CHROMIUM}: install Debian's chromium (`apt-get install -y chromium`; "
                    ".ci/run does) or point VTR_TEST_CHROMIUM at a Chromium binary", pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the browser tests need the playwright package (`pip install playwright`; the browser itself "
                    "comes from Debian's chromium, not `playwright install`)", pytrace=False)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM,
                              args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
        yield b
        b.close()

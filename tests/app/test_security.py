"""What the server hands out: only thumbnails and its own previews; local by default; auth; upload limits."""

import inspect
from urllib.parse import quote

import httpx
import pytest

from tests.app.conftest import free_port


def test_binds_to_localhost_by_default(running_app):
    from app.server import app_command, launch_app

    assert inspect.signature(app_command).parameters["host"].default == "127.0.0.1"
    assert inspect.signature(launch_app).parameters["host"].default == "127.0.0.1"
    assert running_app.url.startswith("http://127.0.0.1:")


def test_file_routes_refuse_anything_outside_the_served_folders(running_app, built_index, collection):
    base = running_app.url.rstrip("/")
    thumbs = sorted((built_index / "thumbnails").rglob("*.jpg"))
    assert thumbs, "the index has thumbnails"
    ok = httpx.get(f"{base}/gradio_api/file={thumbs[0]}")
    assert ok.status_code == 200 and ok.content[:2] == b"\xff\xd8"  # the route works for what it should serve

    outside = [
        "/etc/passwd",
        str(collection / "beach.mp4"),  # source videos are never served: the player gets a preview cut
        str(built_index / "catalog.sqlite"),
        str(built_index / "manifest.json"),
        f"{built_index}/thumbnails/../catalog.sqlite",
        f"{built_index}/thumbnails/0/../../catalog.sqlite",
        "../../../../../../etc/passwd",
    ]
    for path in outside:
        for route in ("/gradio_api/file=", "/file=", "/gradio_api/file/"):
            for spelled in (path, quote(path, safe="")):
                r = httpx.get(base + route + spelled)
                assert r.status_code in (403, 404), (route, spelled, r.status_code)
                assert b"root:" not in r.content and b"SQLite" not in r.content


def test_text_that_names_a_file_is_searched_as_words(running_app):
    from gradio_client import Client

    client = Client(running_app.url, verbose=False, download_files=False)
    moments = client.predict("/etc/passwd", None, "", None, None, False, 3, api_name="/search")
    assert moments and all(m["video"].endswith(".mp4") for m in moments)


@pytest.fixture(scope="module")
def guarded_app(built_index, app_model):
    from app.server import launch_app

    app = launch_app(str(built_index), port=free_port(), model=app_model, auth="ann:s3cr:et", max_upload_mb=1,
                     quiet=True, warm_up=False)
    yield app
    app.close()


def test_auth_is_required_when_set(guarded_app):
    from gradio_client import Client
    from gradio_client.exceptions import AuthenticationError

    base = guarded_app.url.rstrip("/")
    assert httpx.get(base + "/config").status_code in (401, 403)
    r = httpx.post(base + "/gradio_api/call/search", json={"data": ["a walk", None, "", None, None, False, 3]})
    assert r.status_code in (401, 403)
    with pytest.raises(AuthenticationError, match="credentials were not provided"):
        Client(guarded_app.url, verbose=False)
    with pytest.raises(ValueError, match="Could not login"):  # a wrong password is refused too
        Client(guarded_app.url, auth=("ann", "wrong"), verbose=False)
    client = Client(guarded_app.url, auth=("ann", "s3cr:et"), verbose=False, download_files=False)
    assert client.predict("a walk", None, "", None, None, False, 3, api_name="/search")


def test_uploads_are_size_limited(guarded_app):
    base = guarded_app.url.rstrip("/")
    with httpx.Client() as http:
        assert http.post(base + "/login", data={"username": "ann", "password": "s3cr:et"}).status_code == 200
        small = http.post(base + "/gradio_api/upload", files={"files": ("a.jpg", b"\xff\xd8" + b"0" * 1000)})
        assert small.status_code == 200
        big = http.post(base + "/gradio_api/upload", files={"files": ("b.mp4", b"0" * (2 * 1024 * 1024))})
        assert big.status_code == 413


def test_parse_auth():
    from app.server import parse_auth
    from vtr.errors import VtrError

    assert parse_auth(None) is None
    assert parse_auth("u:p:q") == ("u", "p:q")
    for bad in ("nopassword", ":p", "u:"):
        with pytest.raises(VtrError):
            parse_auth(bad)


def test_cli_flags():
    """The verb's flags as `vtr app` will parse them (the lead adds "app" to vtr.cli.VERBS)."""
    from vtr.cli import _add_arguments, build_parser

    parser = build_parser({"app": ("app.server:app_command", "the search app")})
    known, _ = parser.parse_known_args(["app", "--index", "x"])
    from app.server import app_command

    _add_arguments(known._parser, app_command)
    args = parser.parse_args(["app", "--index", "IDX", "--port", "8000", "--auth", "u:p", "--max-upload-mb", "5"])
    assert (args.index, args.host, args.port, args.auth, args.max_upload_mb) == ("IDX", "127.0.0.1", 8000, "u:p", 5)


def test_an_index_that_is_a_file_stops_before_serving(tmp_path):
    from app.server import app_command
    from vtr.errors import VtrError

    f = tmp_path / "videos.idx"
    f.write_text("")
    with pytest.raises(VtrError, match="is a file; the index is a folder"):
        app_command(index=str(f), port=0)


def test_a_port_beyond_65535_is_refused_in_words(tmp_path):
    from app.server import launch_app
    from vtr.errors import VtrError

    with pytest.raises(VtrError, match="--port 99999: a port is a number from 1 to 65535"):  # was an OverflowError
        launch_app(str(tmp_path / "idx"), port=99999)


def test_a_port_in_use_is_said_before_the_model_loads(tmp_path, monkeypatch):
    """Before, the model loaded (the released one: a 1 GB download the first time), then Gradio's error named its
    own settings (GRADIO_SERVER_PORT, `server_port`) rather than --port."""
    import socket

    import app.service
    from app.server import launch_app
    from vtr.errors import VtrError

    def no_service(*args, **kwargs):
        raise AssertionError("the index service (and its model) started before the port was checked")

    monkeypatch.setattr(app.service, "IndexService", no_service)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(VtrError, match=f"^port {port} on 127.0.0.1 is in use \\(another vtr app\\?\\): pick "
                                           "another with --port, or --port 0 for any free one$"):
            launch_app(str(tmp_path / "idx"), port=port)


def test_port_0_serves_on_a_free_port_it_names(built_index, app_model):
    """`--port 0`, which the port-in-use error offers: before, Gradio served port 0 as given and its start failed
    waiting for http://127.0.0.1:0 (httpx.ConnectError)."""
    import httpx

    from app.server import launch_app

    app = launch_app(str(built_index), port=0, model=app_model, quiet=True, warm_up=False)
    try:
        port = int(app.url.rstrip("/").rsplit(":", 1)[1])
        assert port > 0
        assert httpx.get(app.url, timeout=30).status_code == 200
    finally:
        app.close()


def test_an_index_that_could_never_be_made_is_said_before_the_model_loads(tmp_path, monkeypatch):
    """The app makes its index when a folder is first added; before, it started on a path no folder could ever be
    made at (inside a file, a read-only mount), loaded the model, and the page failed at the first folder added."""
    import app.service
    from app.server import launch_app
    from index import check_creatable
    from vtr.errors import VtrError

    def no_service(*args, **kwargs):
        raise AssertionError("the index service (and its model) started before the index's folder was checked")

    monkeypatch.setattr(app.service, "IndexService", no_service)
    (tmp_path / "notes.txt").write_text("a file")
    with pytest.raises(VtrError, match=f"^cannot create the index folder {tmp_path}/notes.txt/sub/idx: "
                                       f"{tmp_path}/notes.txt is a file$"):
        launch_app(str(tmp_path / "notes.txt" / "sub" / "idx"), port=0)
    check_creatable(tmp_path / "new" / "videos.idx")  # one that can be made: nothing made or left by the check
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]

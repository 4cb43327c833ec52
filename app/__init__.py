"""How a person ASKS: the Gradio app over an index folder (``vtr app --index IDX``).

    from app import launch_app
    running = launch_app("~/videos.idx", port=7860)   # serving in the background
    print(running.url); ...; running.close()

Modules: :mod:`app.service` (the index behind the page: search, status, builds, previews; no Gradio),
:mod:`app.media` (preview clips and thumbnails with PyAV), :mod:`app.ui` (the page), :mod:`app.server`
(launching it safely; the ``vtr app`` verb). Gradio is imported only when the app starts.
"""


from __future__ import annotations

import vtr  # noqa: F401  (first: sets OpenMP's wait policy before torch loads)

__all__ = ["launch_app", "app_command", "IndexService"]


def __getattr__(name):
    if name in ("launch_app", "app_command"):
        import app.server as _server

        return getattr(_server, name)
    if name == "IndexService":
        from app.service import IndexService

        return IndexService
    raise AttributeError(name)

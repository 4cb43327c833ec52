"""Serving the page: ``vtr app --index IDX``. Local by default, and careful about what it hands out.

- binds to 127.0.0.1 unless ``--host`` says otherwise (then ``--auth user:pass`` is strongly advised);
- the browser gets only thumbnails of the index and the app's own preview clips: Gradio's ``allowed_paths`` is
  exactly those two folders, so ``/gradio_api/file=`` refuses anything else (source videos, the catalog, the
  rest of the disk); paths are resolved, so ``..`` and links lead nowhere else;
- uploads (query by example) are limited to ``--max-upload-mb``.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from dataclasses import dataclass

from vtr.cli import sigterm_as_interrupt
from vtr.errors import VtrError
from vtr.extras import require

logger = logging.getLogger(__name__)


@dataclass
class RunningApp:
    """A launched app: ``url``; ``close()`` stops the server and removes the app's cache."""

    demo: object
    service: object
    url: str

    def close(self) -> None:
        try:
            self.demo.close()
        finally:
            self.service.close()


def parse_auth(auth: str | None) -> tuple[str, str] | None:
    """``"user:pass"`` → ``("user", "pass")`` (the password may contain ``:``)."""
    if not auth:
        return None
    user, sep, password = auth.partition(":")
    if not sep or not user or not password:
        raise VtrError("--auth takes USER:PASSWORD")
    return user, password


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_port(host: str, port: int) -> int:
    """The port to serve on: ``port``, or for 0 one that is free now, which the system picks. A port that another
    program listens on is said before the model loads (the released model: a 1 GB download the first time);
    before, Gradio's error came after it, naming its own settings rather than --port. Port 0 is chosen here because
    Gradio serves it as given: its server then listened on a port it did not know, and its start failed waiting
    for ``http://127.0.0.1:0``."""
    import errno
    import socket

    # the family the server (uvicorn) binds with: IPv6 for an address with a colon, else IPv4 ("localhost" too)
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: a closed port is free
        try:
            probe.bind((host, port))
        except socket.gaierror as e:
            raise VtrError(f"--host {host}: not an address of this computer ({e.strerror or e})") from None
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise VtrError(f"port {port} on {host} is in use (another vtr app?): pick another with --port, or "
                               "--port 0 for any free one") from None
            raise VtrError(f"cannot serve on {host}:{port}: {e.strerror or e}") from None
        return probe.getsockname()[1]


def launch_app(index: str, host: str = "127.0.0.1", port: int = 7860, auth: str | None = None, model=None,
               device: str | None = None, max_upload_mb: int = 50, warm_up: bool = True,
               quiet: bool = True, build_options: dict | None = None, precision: str | None = None,
               watch: float | None = None) -> RunningApp:
    """Start the app on ``host:port`` in background threads and return it (see :func:`app_command`).

    model, build_options, precision: as :class:`app.service.IndexService` (model: a name, a folder, or a model
    object). watch: seconds between updates of the index while the app runs (:meth:`IndexService.watch`).
    quiet: without Gradio's banner, which speaks to a developer (`share=True` in `launch()`): `vtr app` says its
    address itself.
    """
    require("gradio", "faiss")  # said in one line, before the page or the model
    from app.service import IndexService
    from app.ui import CSS, PAGE_JS, THEME, build_ui

    credentials = parse_auth(auth)
    if max_upload_mb <= 0:
        raise VtrError("--max-upload-mb must be positive")
    if not 0 <= int(port) <= 65535:
        raise VtrError(f"--port {port}: a port is a number from 1 to 65535 (0: any free one)")
    if not _is_loopback(host) and credentials is None:
        logger.warning("serving on %s without --auth: anyone who can reach this address can search and watch "
                       "your videos", host)
    if device is not None:  # a device this machine lacks stops the start (the page could not mend it)
        from vtr.device import resolve_device

        resolve_device(device)
    port = check_port(host, int(port))
    from index import check_creatable

    check_creatable(index)  # made when a folder is first added; one that never could be is said before the model
    if watch is not None:  # a bad interval is said before anything starts
        from index import check_interval

        check_interval(watch)
    service = IndexService(index, model=model, device=device, build_options=build_options,
                           precision=precision)
    try:
        if watch is not None:  # first: a read-only index is refused before its model loads
            service.watch(watch)
        if warm_up:
            try:
                service.warm_up()
            except VtrError as e:  # shown again on the page, where it can be fixed
                logger.warning("%s", e)
        demo = build_ui(service)
        demo.queue(default_concurrency_limit=1)
        try:
            _, url, _ = demo.launch(
                server_name=host, server_port=port, auth=credentials, prevent_thread_lock=True, share=False,
                allowed_paths=service.served_dirs(), max_file_size=f"{int(max_upload_mb)}mb", show_error=False,
                quiet=quiet, inbrowser=False, ssr_mode=False, mcp_server=False, pwa=False, enable_monitoring=False,
                theme=THEME, css=CSS, js=PAGE_JS, footer_links=["api"])
        except OSError as e:
            raise VtrError(f"cannot serve on {host}:{port}: {e}") from e
    except BaseException:
        service.close()
        raise
    return RunningApp(demo, service, url)


def app_command(index: str = None, host: str = "127.0.0.1", port: int = 7860, auth: str = None, model: str = None,
                device: str = None, max_upload_mb: int = 50, precision: str = "auto", watch: float = None) -> int:
    """Open the search app in your browser: type a sentence, watch the moments; add folders and update the index.

    index: index folder, required (created from the Index tab when it does not exist yet)
    host: address to listen on; the default serves this computer only (use 0.0.0.0 with --auth to share)
    port: port to listen on
    auth: USER:PASSWORD required to open the app
    model: model to encode queries (default: the index's; for a new index: the default model)
    device: torch device for the encoder (default: cuda if available, else cpu)
    max_upload_mb: largest example image or clip accepted, in MB
    precision: video encoder precision (examples, index builds): fp32, bf16 or auto (bf16 where it is native
               and measures faster, else fp32; see vtr.precision)
    watch: update the index this many seconds after each update while the app runs, so that videos arriving in
           its folders become searchable (as `vtr index update --watch`)
    """
    if not index:
        raise VtrError("--index is required: the index folder to search (it may not exist yet)")
    if os.path.exists(os.path.expanduser(index)) and not os.path.isdir(os.path.expanduser(index)):
        raise VtrError(f"--index {index} is a file; the index is a folder (it may not exist yet)")
    running = launch_app(index, host=host, port=port, auth=auth, model=model, device=device,
                         max_upload_mb=max_upload_mb, precision=precision, watch=watch)
    logger.info("vtr app on %s (Ctrl+C to stop)", running.url)
    try:
        with sigterm_as_interrupt():  # a service manager's stop cleans up like Ctrl+C
            running.demo.block_thread()  # returns on Ctrl+C, after closing the server
    finally:
        running.close()
    return 0

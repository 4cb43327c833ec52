"""The Gradio page: a Search tab (words or an example → a gallery of moments → a player) and an Index tab (add a
folder, build or update with a live progress bar, what failed and why). Everything it does goes through
:class:`app.service.IndexService`; errors reach the page as a warning toast and a status line, never a traceback.

Endpoints for programs (``gradio_client``): ``/search`` (query, example, folder, min_duration, max_duration,
rerank, k → list of moments as dicts) and ``/status`` (→ the index's counts and failures).
"""

from __future__ import annotations

import logging
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # the app never calls home

import gradio as gr  # noqa: E402

from app.service import IndexService, Moment, clock  # noqa: E402
from vtr.errors import VtrError  # noqa: E402

logger = logging.getLogger(__name__)

ALL_FOLDERS = ""
EXAMPLE_TYPES = ["image", "video"]

# System fonts only: the default theme would fetch web fonts from the internet.
THEME = gr.themes.Soft(primary_hue="indigo", neutral_hue="slate",
                       font=("ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"),
                       font_mono=("ui-monospace", "SFMono-Regular", "Menlo", "monospace"))
CSS = """
#vtr-header h1 { margin-bottom: 0; }
#vtr-header p { margin-top: 0.2em; opacity: 0.75; }
#status, #details { min-height: 1.5em; }
#build-summary { min-height: 4em; }
#results .caption-label { font-size: 0.8em; white-space: normal; }
#results .grid-wrap.fixed-height { min-height: 180px; }  /* grow with the results, not to a fixed 450 px */
"""


def _message(e: BaseException) -> str:
    """What the page says about an error: VtrError messages are written for people; anything else is logged."""
    if isinstance(e, VtrError):
        return str(e)
    logger.exception("unexpected error in the app")
    return f"Something went wrong ({type(e).__name__}: {e}). The details are in the server's log."


def _caption(m: Moment) -> str:
    return f"{m.name} · {clock(m.start)}–{clock(m.end)} · {m.score:.3f}"


def _grouped_markdown(moments: list[Moment]) -> str:
    lines, current = [], None
    for m in moments:
        if m.path != current:
            current = m.path
            lines.append(f"\n**{m.name}** <small>{m.folder}</small>\n")
        lines.append(f"- {clock(m.start)}–{clock(m.end)} · score {m.score:.3f}")
    return "\n".join(lines).strip()


def _status_markdown(st: dict | None, index_dir) -> str:
    if st is None:
        return (f"**No index yet** at `{index_dir}`. Add a folder of videos below: every video in it (and its "
                "sub-folders) is cut into short windows and embedded, so that you can search them by what happens.")
    m = st["manifest"]
    roots = "".join(f"\n- `{r}`" for r in st["roots"]) or " none"
    pending = f" · {len(st['pending'])} pending (interrupted build: update)" if st["pending"] else ""
    return (f"**Index** `{st['index']}` · model `{m['model']}` · FAISS `{m.get('index_factory')}`\n\n"
            f"**{st['files']}** videos indexed ({st['hours']:.2f} h, {st['windows']} windows) · "
            f"**{len(st['failed'])}** failed{pending}\n\n**Folders:**{roots}")


def _failure_rows(failures) -> list[list[str]]:
    return [[path, reason] for path, reason in failures]


def build_ui(service: IndexService) -> gr.Blocks:
    """The page for ``service``'s index (launch it with :func:`app.server.launch_app`)."""

    def folder_choices():
        try:
            folders = service.folders()
        except Exception as e:  # noqa: BLE001 - a broken index still shows the page, with its error
            logger.warning("cannot list folders: %s", e)
            folders = []
        return [("All folders", ALL_FOLDERS)] + [(f, f) for f in folders]

    def empty_state():
        if service.exists():
            return gr.update(value="", visible=False)
        return gr.update(value=f"### No index yet\nThere is nothing to search at `{service.index_dir}`. Open the "
                               "**Index** tab and add a folder of videos.", visible=True)

    def run_search(query, example, folder, min_duration, max_duration, rerank, k):
        return service.search(query or "", example=example or None, folder=folder or None,
                              min_duration=min_duration, max_duration=max_duration, rerank=bool(rerank),
                              k=int(k or 24))

    # ------------------------------------------------------------------------------------------- handlers
    def on_search(query, example, folder, min_duration, max_duration, rerank, k):
        try:
            moments = run_search(query, example, folder, min_duration, max_duration, rerank, k)
        except Exception as e:  # noqa: BLE001 - shown on the page
            msg = _message(e)
            gr.Warning(msg)
            return [], f"⚠️ {msg}", [], "", None, ""
        if not moments:
            return ([], "No moments match. Try other words, or loosen the filters.", [], "", None, "")
        thumbs = [service.thumbnail_of(m) for m in moments]
        shown = [m for m, t in zip(moments, thumbs) if t is not None]  # a video that vanished has no picture
        gallery = [(t, _caption(m)) for m, t in zip(moments, thumbs) if t is not None]
        videos = len({m.path for m in shown})
        what = "your example" if example else f"“{(query or '').strip()}”"
        status = f"**{len(shown)}** moments in **{videos}** videos for {what}. Select one to play it."
        return gallery, status, [m.to_dict() | {"thumbnail": m.thumbnail} for m in shown], \
            _grouped_markdown(shown), None, ""

    def on_select(results, evt: gr.SelectData):
        if not results or evt.index is None or not 0 <= int(evt.index) < len(results):
            return None, ""
        d = results[int(evt.index)]
        m = Moment(d["video"], d["start"], d["end"], d["score"], d.get("thumbnail"))
        try:
            clip = service.preview(m)
        except Exception as e:  # noqa: BLE001
            msg = _message(e)
            gr.Warning(msg)
            return None, f"⚠️ {msg}"
        return (gr.update(value=clip, label=f"{m.name} from {clock(m.start)}"),
                f"**{m.name}** · {clock(m.start)}–{clock(m.end)} · score {m.score:.3f}\n\n`{m.path}`")

    def on_refresh():
        st, error = None, ""
        try:
            st = service.status()
        except Exception as e:  # noqa: BLE001
            error = f"\n\n⚠️ {_message(e)}"
        return (empty_state(), gr.update(choices=folder_choices(), value=ALL_FOLDERS),
                _status_markdown(st, service.index_dir) + error, _failure_rows(st["failed"]) if st else [])

    def on_build(folder, progress=gr.Progress(track_tqdm=True)):
        adding = folder is not None
        progress(0, desc="Loading the model and scanning folders…")
        try:
            report = service.build(folder if adding else None)
        except Exception as e:  # noqa: BLE001
            msg = _message(e)
            gr.Warning(msg)
            summary = f"⚠️ {msg}"
        else:
            summary = (f"Done in {report.seconds:.0f} s: **{report.added}** new, {report.changed} changed, "
                       f"{report.renamed} renamed, {report.deleted} removed, {report.unchanged} unchanged, "
                       f"**{report.failed}** failed; {report.embedded_windows} windows embedded. The index holds "
                       f"**{report.total_files}** videos.")
            if report.failures:
                names = ", ".join(f"`{os.path.basename(p)}`" for p, _ in report.failures[:10])
                more = f" and {len(report.failures) - 10} more" if len(report.failures) > 10 else ""
                summary += f"\n\nCould not index {names}{more}: the reasons are in the table below."
        empty, choices, status, failures = on_refresh()
        return summary, empty, choices, status, failures

    def on_update(progress=gr.Progress(track_tqdm=True)):
        return on_build(None, progress)

    def api_search(query, example, folder, min_duration, max_duration, rerank, k):
        """Moments for a text query or an example image/clip (the example wins), grouped by video, best first: a
        list of {video (full path), name, folder, start, end, score}. Errors come back with a readable message."""
        try:
            return [m.to_dict() for m in run_search(query, example, folder, min_duration, max_duration, rerank, k)]
        except VtrError as e:
            raise gr.Error(str(e), print_exception=False) from None
        except Exception as e:  # noqa: BLE001
            raise gr.Error(_message(e), print_exception=False) from None

    def api_status() -> dict | None:
        """The index: model, counts, folders and failed files (null when there is no index yet)."""
        try:
            st = service.status()
        except Exception as e:  # noqa: BLE001
            raise gr.Error(_message(e), print_exception=False) from None
        if st is None:
            return None
        return {"index": st["index"], "model": st["manifest"]["model"], "files": st["files"],
                "windows": st["windows"], "hours": st["hours"], "folders": st["roots"],
                "failed": [{"path": p, "reason": r} for p, r in st["failed"]], "pending": len(st["pending"])}

    # --------------------------------------------------------------------------------------------- layout
    # delete_cache: Gradio keeps a copy of every file it serves; drop copies older than 6 h, hourly.
    with gr.Blocks(title="vtr — find moments in your videos", analytics_enabled=False,
                   delete_cache=(3600, 6 * 3600)) as demo:
        results = gr.State([])
        gr.Markdown("# vtr\nType a sentence, watch the moments.", elem_id="vtr-header")
        with gr.Tabs():
            with gr.Tab("Search", id="search"):
                no_index = gr.Markdown(visible=False, elem_id="no-index")
                with gr.Row(equal_height=True):
                    query = gr.Textbox(placeholder="Describe a moment, e.g. “a dog catches a frisbee on the beach”",
                                       show_label=False, scale=8, elem_id="query", autofocus=True, max_length=500)
                    search_btn = gr.Button("Search", variant="primary", scale=1, min_width=120, elem_id="search")
                with gr.Accordion("Search by example, filters", open=False, elem_id="options"):
                    with gr.Row():
                        example = gr.File(label="Example image or short clip (instead of words)",
                                          file_types=EXAMPLE_TYPES, type="filepath", height=140, elem_id="example")
                        with gr.Column():
                            # Custom values: programs may name any folder (it only narrows the search).
                            folder = gr.Dropdown(label="Folder", choices=folder_choices(), value=ALL_FOLDERS,
                                                 allow_custom_value=True, elem_id="folder")
                            with gr.Row():
                                min_duration = gr.Number(label="Videos at least (s)", minimum=0, value=None)
                                max_duration = gr.Number(label="Videos at most (s)", minimum=0, value=None)
                        with gr.Column():
                            rerank = gr.Checkbox(label="Re-rank with the matching head (ITM): slower, more precise; "
                                                       "words only", value=False, elem_id="rerank")
                            k = gr.Slider(1, 60, value=24, step=1, label="Moments to show")
                status = gr.Markdown(elem_id="status")
                with gr.Row():
                    with gr.Column(scale=3):
                        gallery = gr.Gallery(label="Moments, grouped by video, best first", show_label=False,
                                             columns=4, height="auto", allow_preview=False, object_fit="cover",
                                             elem_id="results", interactive=False)
                        grouped = gr.Markdown(elem_id="grouped")
                    with gr.Column(scale=2):
                        player = gr.Video(label="Preview", autoplay=True, interactive=False, elem_id="player",
                                          buttons=["download"])
                        details = gr.Markdown(elem_id="details")
            with gr.Tab("Index", id="index"):
                index_status = gr.Markdown(elem_id="index-status")
                with gr.Row(equal_height=True):
                    new_folder = gr.Textbox(label="Add a folder of videos (on this computer)", scale=8,
                                            placeholder="/home/me/Videos", elem_id="new-folder")
                    add_btn = gr.Button("Add and index", variant="primary", scale=1, min_width=140, elem_id="add")
                update_btn = gr.Button("Update: re-scan the indexed folders for new, changed and deleted videos",
                                       elem_id="update")
                build_summary = gr.Markdown(elem_id="build-summary")
                failures = gr.Dataframe(headers=["file", "why it could not be indexed"], value=[],
                                        label="Files that could not be indexed", interactive=False, wrap=True,
                                        elem_id="failures")

        # ---------------------------------------------------------------------------------------- events
        search_inputs = [query, example, folder, min_duration, max_duration, rerank, k]
        search_outputs = [gallery, status, results, grouped, player, details]
        gr.on([query.submit, search_btn.click], on_search, search_inputs, search_outputs,
              api_visibility="private", concurrency_id="index", concurrency_limit=1, show_progress_on=[gallery])
        gallery.select(on_select, [results], [player, details], api_visibility="private", concurrency_limit=2,
                       show_progress_on=[player])
        refresh_outputs = [no_index, folder, index_status, failures]
        demo.load(on_refresh, None, refresh_outputs, api_visibility="private")
        build_outputs = [build_summary] + refresh_outputs
        add_btn.click(on_build, [new_folder], build_outputs, api_visibility="private", concurrency_id="build",
                      concurrency_limit=1, show_progress_on=[build_summary])
        update_btn.click(on_update, None, build_outputs, api_visibility="private", concurrency_id="build",
                         concurrency_limit=1, show_progress_on=[build_summary])

        api_out = gr.JSON(visible=False)
        api_btn = gr.Button(visible=False)
        api_btn.click(api_search, search_inputs, api_out, api_name="search", concurrency_id="index",
                      concurrency_limit=1)
        gr.api(api_status, api_name="status")
    return demo

"""The Gradio page: a Search tab (words or an example → a gallery of moments → a player) and an Index tab (add a
folder, build or update with a live progress bar, what failed and why). Everything it does goes through
:class:`app.service.IndexService`; errors reach the page as a warning toast and a status line, never a traceback.

Everything a person typed or a file is named is shown as plain text: Markdown components get it through
:func:`literal`, toasts (which render HTML) through :func:`html.escape`.

Endpoints for programs (``gradio_client``): ``/search`` (query, example, folder, min_duration, max_duration,
rerank, k, since, until → list of moments as dicts, best first), ``/similar`` (video, start, end, the same filters →
the moments like that one) and ``/status`` (→ the index's counts and failures).
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # the app never calls home

import gradio as gr  # noqa: E402

from app.media import MEDIA_ASKED, PLAYED_IF_SAID, is_copied, said_plays  # noqa: E402
from app.service import IndexService, Moment, clock, group_by_video, parse_seconds, recorded_text  # noqa: E402
from vtr.data.animation import is_animation  # noqa: E402
from vtr.data.extensions import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS  # noqa: E402
from vtr.errors import VtrError, disk_full  # noqa: E402

logger = logging.getLogger(__name__)

ALL_FOLDERS = ""
#: What the example upload takes: every photo and video file vtr reads, by extension too, as browsers give many of them
#: no image/video type (an iPhone's .HEIC, a camcorder's .MTS, a TV recording's .ts, .3gp, .vob, ...)
EXAMPLE_TYPES = ["image", "video", *sorted(IMAGE_EXTENSIONS | VIDEO_EXTENSIONS)]
PAGE = 24  # moments per page; "More results" asks for another page
QUOTED = 80  # characters of the query the status line quotes (a longer one is cut; the notes say what was read)
WATCH_TICK_MIN_S = 15.0  # while the app watches its index, the counts on the page refresh at most this often
BEST_FIRST, BY_VIDEO = "Best first", "Grouped by video"
PLAYER_LABEL = "Preview"  # the player's label when no moment is selected (a selection names its moment)
#: What a new search's results replace, in the order _Handlers.emptied gives them (names of the page's components).
EMPTIED = ("player", "details", "seek_to", "timeline", "t_in", "t_out", "export_note", "selected", "export_file",
           "export_all_btn", "export_all_file", "export_all_note")

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
#timeline .track { position: relative; height: 14px; border-radius: 7px; background: var(--neutral-200); }
#timeline .hit { position: absolute; top: 0; height: 14px; min-width: 3px; border-radius: 3px;
                 background: var(--primary-300); }
#timeline .hit.selected { background: var(--primary-600); }
#timeline .ends { display: flex; justify-content: space-between; font-size: 0.8em; opacity: 0.75; }
"""

# Runs once when the page loads. gr.Video cannot start at a given second, so the clip of a selected moment starts
# a little before it (context) and the page seeks to the moment once the browser has the clip's metadata; the
# offset travels in #seek-to, updated by the same event that changes the clip. A clip of the source's own packets
# (marked data-copied there, or in #example-mark for the example's player) that the browser cannot show (an error, or
# a player with sound and no pictures, as Chromium plays an MP4 whose video codec it lacks) is asked for again,
# transcoded (#unplayed: _Handlers.on_unplayed; #example-unplayed: _Handlers.on_example_unplayed).
PAGE_JS = """
() => {
  const players = {'#player': ['#seek-to', '#unplayed'], '#example-video': ['#example-mark', '#example-unplayed']};
  const playerOf = (e) => {
    const v = e.target instanceof HTMLSourceElement ? e.target.parentElement : e.target;
    if (!(v instanceof HTMLVideoElement)) return null;
    const id = Object.keys(players).find((p) => v.closest(p));
    return id ? [v, ...players[id]] : null;
  };
  const unshown = (mark, button) => {
    const copied = document.querySelector(mark + ' [data-copied]');
    if (!copied) return false;
    copied.removeAttribute('data-copied');
    document.querySelector(button).click();
    return true;
  };
  document.addEventListener('loadedmetadata', (e) => {
    const p = playerOf(e);
    if (!p) return;
    const [v, mark, button] = p;
    if (v.videoWidth === 0 && unshown(mark, button)) return;
    const at = document.querySelector(mark + ' [data-t]');
    const t = at ? parseFloat(at.dataset.t) : 0;
    if (t > 0 && t < v.duration) v.currentTime = t;
  }, true);
  document.addEventListener('error', (e) => { const p = playerOf(e); if (p) unshown(p[1], p[2]); }, true);
}
"""
# Runs when the page loads: the kinds of video its browser plays besides those every browser plays
# (app.media.PLAYED_IF_SAID, asked of canPlayType), those its machine decodes in hardware at 4K60, and the HDR ones it
# shows (app.media.MEDIA_ASKED, asked of mediaCapabilities; a browser without it says none), into #plays, for the
# previews (app.media.copy_plan). A browser that does not know mediaCapabilities' transferFunction ignores it and
# answers for SDR: asked for a transfer that does not exist, one that knows the question refuses it (a TypeError), and
# only such a browser is asked about HDR.
PLAYS_JS = """
async () => {
  const v = document.createElement('video');
  const said = Object.entries(%s).filter(
    ([kind, codec]) => v.canPlayType('video/mp4; codecs="' + codec + ', mp4a.40.2"') === 'probably');
  const caps = navigator.mediaCapabilities;
  const ask = (q, transfer) => caps.decodingInfo({type: 'file', video: Object.assign({
    contentType: 'video/mp4; codecs="' + q.codec + '"', width: q.width, height: q.height, bitrate: q.bitrate,
    framerate: q.framerate}, transfer ? {transferFunction: transfer, colorGamut: 'rec2020'} : {})});
  const questions = %s;
  const weighsHdr = caps ? await ask(questions[0], 'no-such-transfer').then(() => false, (e) => e instanceof TypeError)
                         : false;
  const answered = await Promise.all(questions.map(async (q) => {
    if (!caps || (q.transfer && !weighsHdr)) return null;
    try {
      const r = await ask(q, q.transfer);
      return r.supported && (r.powerEfficient || !q.efficient) ? q.word : null;
    } catch (e) {
      return null;
    }
  }));
  return [said.map(([kind]) => kind).concat(answered.filter((word) => word)).join(' ')];
}
""" % (json.dumps(PLAYED_IF_SAID), json.dumps(MEDIA_ASKED))
# On a selection, bring the player into view: on a phone-width screen it sits below the whole gallery.
SCROLL_TO_PLAYER_JS = """
(...args) => {
  const p = document.querySelector('#player');
  if (p) p.scrollIntoView({behavior: 'instant', block: 'start'});
  return args;
}
"""

# Taking a folder out of the index asks first (adding it back embeds its videos again); cancel sends None, an empty
# choice "" (the handler says to choose one).
CONFIRM_REMOVE_JS = """
(folder, filtered) => {
  if (!folder) return ["", filtered];
  return [confirm('Take ' + folder + ' out of the index?\\n\\nIts videos stay on disk; adding the folder again '
                  + 'embeds them again.') ? folder : null, filtered];
}
"""

_MARKDOWN_SPECIAL = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character


def literal(text) -> str:
    """``text`` as Markdown that renders exactly as written: no HTML, no emphasis, no links, one line."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def quoted(text, limit: int = QUOTED) -> str:
    """``text`` in quotes as :func:`literal` Markdown, cut after ``limit`` characters (at a space when one is in
    its second half) with an ellipsis, so a long query does not fill the page."""
    words = " ".join(str(text).split())
    if len(words) > limit:
        cut = words[:limit]
        space = cut.rfind(" ")
        words = (cut[:space] if space > limit // 2 else cut).rstrip() + "…"
    return f"“{literal(words)}”"


def _message(e: BaseException) -> str:
    """What the page says about an error: VtrError messages are written for people; anything else is logged."""
    if isinstance(e, VtrError):
        return str(e)
    if disk_full(e):  # the app's cache (previews, exports)
        where = Path(e.filename).parent if e.filename else "the app's cache"
        logger.warning("%s", e)
        return f"No space left on the disk of {where}: free some space, then try again."
    logger.exception("unexpected error in the app")
    return f"Something went wrong ({type(e).__name__}). The details are in the server's log."


def _player_mark(clip, copy: bool = True, t: float | None = None) -> str:
    """The hidden mark beside a player that PAGE_JS reads when its clip loads: the second to seek to (``t``), and
    whether the clip is its source's own packets (:func:`app.media.is_copied`; ``copy=False``: a transcode was
    asked for)."""
    copied = ' data-copied="1"' if copy and is_copied(clip) else ""
    attributes = (f' data-t="{t:.3f}"' if t is not None else "") + copied
    return f"<span{attributes}></span>" if attributes else ""


def _warn(msg: str) -> str:
    """Toast ``msg`` (toasts render HTML: escaped) and return it for a Markdown status line (literal)."""
    gr.Warning(html.escape(msg, quote=False))
    return f"⚠️ {literal(msg)}"


def _marked_gallery(items: list, position: int | None):
    """The gallery's new items with the item at ``position`` marked (None: none). A component, not ``gr.update``:
    gradio drops a None ``selected_index`` from an update, and the mark stayed where it was."""
    return gr.Gallery(value=items, selected_index=position)


def _position_in(view: list[int], selected) -> int | None:
    """Where the gallery (``view``: indices into the results) shows the moment in the player (``selected``, an
    index into the results; -1: none), or None."""
    return view.index(selected) if selected is not None and selected >= 0 and selected in view else None


def _caption(m: Moment) -> str:
    return f"{m.name} · {clock(m.start)}–{clock(m.end)} · {m.score:.3f}"


def _grouped_markdown(moments: list[Moment]) -> str:
    lines, current = [], None
    for m in moments:
        if m.path != current:
            current = m.path
            day = recorded_text(m.recorded, m.recorded_by, day_only=True)
            lines.append(f"\n**{literal(m.name)}** <small>{literal(m.folder)}{' · ' + day if day else ''}</small>\n")
        lines.append(f"- {clock(m.start)}–{clock(m.end)} · score {m.score:.3f}")
    return "\n".join(lines).strip()


def _status_markdown(st: dict | None, index_dir, watching: float | None = None) -> str:
    watch = (f"\n\n**Watching** its folders: an update {watching:g} s after each, so videos that arrive are "
             "searchable once they are completely written" if watching else "")
    read_only = (f"\n\n**Read-only here** ({literal(st['read_only'])}): searches work; adding, updating and "
                 "taking out need write access." if st and st.get("read_only") else "")
    if st is None:
        return (f"**No index yet** at {literal(index_dir)}. Add a folder of videos below: every video in it (and "
                "its sub-folders) is cut into short windows and embedded, so that you can search them by what "
                "happens." + watch)
    m = st["manifest"]
    missing = set(st.get("missing_roots", []))
    roots = "".join(f"\n- {literal(r)}" + (" · **not found** (not mounted, moved or deleted? its videos stay in "
                                             "the index and play again once it is back; `vtr index update "
                                             "--forget-missing` drops them)" if r in missing else "")
                    for r in st["roots"]) or " none"
    left_out = st.get("excluded") or []
    if left_out:
        roots += ("\n\n**Left out** (taken out of the index; add one as a folder to index it again):"
                  + "".join(f"\n- {literal(e)}" for e in left_out))
    pending = f" · {len(st['pending'])} pending (interrupted build: update)" if st["pending"] else ""
    partial = f" · **{len(st['partial'])}** indexed in part" if st.get("partial") else ""
    from index import dates_summary, local_time, pictures_summary

    last = f" · the last on {literal(local_time(st['last_indexed']))}" if st.get("last_indexed") else ""
    dates = dates_summary(st.get("recorded"))
    dates = f"\n\n**Recorded** {literal(dates)}" if dates else ""
    pictures = pictures_summary(st.get("pictures"))
    dates += f"\n\n**Pictures** {literal(pictures)}" if pictures else ""
    return (f"**Index** {literal(st['index'])} · model {literal(m['model'])} · FAISS "
            f"{literal(m.get('index_factory'))}\n\n"
            f"**{st['files']}** videos indexed ({st['hours']:.2f} h, {st['windows']} windows){last}{partial} · "
            f"**{len(st['failed'])}** failed{pending}{dates}{watch}{read_only}\n\n**Folders:**{roots}")


def _problem_rows(st: dict | None) -> list[list[str]]:
    if not st:
        return []
    return ([[path, f"indexed in part: {reason}"] for path, reason in st.get("partial", [])]
            + [[path, reason] for path, reason in st["failed"]])


EXAMPLE_PREVIEW_PX = 480  # the longest side of an example photo as the page shows it (its box is 140 px high)


def example_picture(path: str):
    """An example photo as the model sees it (upright, HDR tone-mapped, an iPhone's tiled HEIC whole), made small
    for the page, which shows it whatever its format (a browser shows no HEIC, nor TIFF); the file itself when it
    cannot be read (the search says why). Raises ValueError saying why where that is known (a TIFF FFmpeg shows
    blank: :func:`vtr.data.image.read_image`)."""
    from vtr.data.image import read_image

    try:
        rgb = read_image(path)
    except ValueError:
        raise
    except Exception as e:  # noqa: BLE001 - the search that follows says what is wrong with the file
        logger.debug("example %s not read for its preview: %s", path, e)
        return path
    step = -(-max(rgb.shape[:2]) // EXAMPLE_PREVIEW_PX)
    return rgb[::step, ::step]


def _inside(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or lies under it."""
    path, folder = Path(path), Path(folder)
    return path == folder or folder in path.parents


def _overview_markdown(ov: dict | None) -> str:
    if not ov:
        return ""
    partial = f" ({ov['partial']} indexed in part)" if ov["partial"] else ""
    return (f"Searching **{ov['files']}** videos{partial} · {ov['hours']:.2f} h · {ov['windows']} windows "
            "of a few seconds each.")


def _timeline_html(results: list[dict], selected: int, duration: float | None) -> str:
    """A bar for the selected moment's video with every hit of that video marked (the selected one darker)."""
    d = results[selected]
    hits = [(i, r) for i, r in enumerate(results) if r["video"] == d["video"]]
    end = max([duration or 0.0] + [r["end"] for _, r in hits]) or 1.0
    marks = "".join(
        f'<div class="hit{" selected" if i == selected else ""}" title="{html.escape(clock(r["start"]))}–'
        f'{html.escape(clock(r["end"]))} · {r["score"]:.3f}" style="left:{100 * r["start"] / end:.2f}%;'
        f'width:{100 * (r["end"] - r["start"]) / end:.2f}%"></div>' for i, r in hits)
    return (f'<div class="track" aria-label="{len(hits)} moments in {html.escape(d["name"])}">{marks}</div>'
            f'<div class="ends"><span>0:00</span><span>{len(hits)} moment{"s" * (len(hits) != 1)} in this video'
            f'</span><span>{clock(end)}</span></div>')


class _Handlers:
    """What the page does when a person acts, for one ``service``: each method is one event's handler."""

    def __init__(self, service: IndexService):
        self.service = service

    # ------------------------------------------------------------------------------------------- page state
    def folder_choices(self):
        try:
            folders = self.service.folders()
        except Exception as e:  # noqa: BLE001 - a broken index still shows the page, with its error
            logger.warning("cannot list folders: %s", e)
            folders = []
        return [("All folders", ALL_FOLDERS)] + [(f, f) for f in folders]

    def empty_state(self):
        if self.service.exists():
            return gr.update(value="", visible=False)
        return gr.update(value=f"### No index yet\nThere is nothing to search at {literal(self.service.index_dir)}. "
                               "Open the **Index** tab and add a folder of videos.", visible=True)

    # --------------------------------------------------------------------------------------------- search
    @staticmethod
    def narrowing(folder, min_duration, max_duration, since, until) -> dict:
        """The page's filters as the service takes them; a bad duration or date says which box it is in."""
        from index import date_filters

        return dict(folder=folder or None, min_duration=parse_seconds(min_duration, "Videos at least"),
                    max_duration=parse_seconds(max_duration, "Videos at most"),
                    **date_filters(since, until, names=("Recorded from", "Recorded until")))

    def run_search(self, query, example, folder, min_duration, max_duration, rerank, k, since=None, until=None):
        return self.service.search(query or "", example=example or None, rerank=bool(rerank), k=int(k or PAGE),
                                   **self.narrowing(folder, min_duration, max_duration, since, until))

    @staticmethod
    def show(results: list[dict], order):
        """Gallery, grouped list and the order the gallery shows ``results`` in (indices into ``results``)."""
        moments = [Moment(d["video"], d["start"], d["end"], d["score"], d.get("thumb"), recorded=d.get("recorded"),
                          recorded_by=d.get("recorded_by")) for d in results]
        view = group_by_video(moments) if order == BY_VIDEO else moments
        positions = {id(m): i for i, m in enumerate(moments)}
        gallery = [(m.thumbnail, _caption(m)) for m in view]
        return gallery, _grouped_markdown(group_by_video(moments)), [positions[id(m)] for m in view]

    def run_similar(self, like, folder, min_duration, max_duration, k, since=None, until=None):
        return self.service.similar(Moment(like["video"], like["start"], like["end"], 0.0, None), k=int(k or PAGE),
                                    **self.narrowing(folder, min_duration, max_duration, since, until))

    def on_search(self, query, example, folder, min_duration, max_duration, rerank, page, order, shown, like=None,
                  since=None, until=None, progress=gr.Progress(track_tqdm=True)):
        """A new search (shown=0) or one more page of the same search (shown = how many are on the page); ``like``
        (a moment's ``video``, ``start``, ``end``): moments like it instead of the words or the example. A
        re-ranking's progress (its tqdm) shows on the page."""
        k = int(shown or 0) + int(page or PAGE)
        nothing = ([], "", [], "", [], 0, gr.update(visible=False))
        try:
            if like:
                moments, notes = self.run_similar(like, folder, min_duration, max_duration, k, since, until), []
            else:
                moments = self.run_search(query, example, folder, min_duration, max_duration, rerank, k, since, until)
                notes = [] if example else self.service.query_notes(query)
        except Exception as e:  # noqa: BLE001 - shown on the page
            gallery, _, results, grouped, view, n, more = nothing
            return gallery, _warn(_message(e)), results, grouped, view, n, more
        for note in notes:
            gr.Warning(html.escape(note, quote=False))
        if not moments:
            gallery, _, results, grouped, view, n, more = nothing
            return gallery, "No moments match. Try other words, or loosen the filters.", results, grouped, view, n, more
        results = []
        for m in moments:
            thumb = self.service.thumbnail_of(m)
            if thumb is not None:  # a video that vanished since indexing has no picture
                results.append(m.to_dict() | {"thumb": thumb})
        videos = len({d["video"] for d in results})
        if like:
            what = f"like {literal(os.path.basename(like['video']))} {clock(like['start'])}–{clock(like['end'])}"
        else:
            what = "for " + ("your example" if example else quoted(query or ""))
        status = f"**{len(results)}** moments in **{videos}** videos {what}. Select one to play it."
        status += "".join(f"\n\n⚠️ {literal(n)}" for n in notes)
        gallery, grouped, view = self.show(results, order)
        more = gr.update(visible=len(moments) >= k)  # a full page: there may be more
        return gallery, status, results, grouped, view, len(moments), more

    def on_new_search(self, query, example, folder, min_duration, max_duration, rerank, page, order, since, until,
                      progress=gr.Progress(track_tqdm=True)):
        """A new search by words or example: no moment of its results is in the player (the mark stayed at the old
        position), and "More results" follows it, not an earlier "Moments like this"; then :meth:`emptied`."""
        gallery, status, results, *rest = self.on_search(query, example, folder, min_duration, max_duration, rerank,
                                                         page, order, 0, None, since, until, progress)
        return (_marked_gallery(gallery, None), status, results, *rest, None, *self.emptied(results))

    @classmethod
    def emptied(cls, results) -> tuple:
        """What a new search's results replace (:data:`EMPTIED`): the player and everything that named the last
        moment (its label and export span too), and the last search's zip of moments ("Export these moments" offered
        when there are some). Returned with the results, not by an event after them: a moment clicked as the results
        appeared was selected, and then such an event emptied the selection, so its preview never came (on a loaded
        machine 3 clicks of 25; the browser test held such an event to show it)."""
        return (gr.update(value=None, label=PLAYER_LABEL), "", "", "", "", "", "", -1,
                gr.update(value=None, visible=False), *cls.after_search(results))

    def on_like(self, results, selected, folder, min_duration, max_duration, page, order, since, until,
                progress=gr.Progress(track_tqdm=True)):
        """Moments like the one in the player, with the page's filters; it becomes what "More results" follows."""
        if not results or selected is None or not 0 <= int(selected) < len(results):
            gr.Warning("Select a moment first.")
            return (gr.skip(),) * (8 + len(EMPTIED))
        d = results[int(selected)]
        like = {"video": d["video"], "start": d["start"], "end": d["end"]}
        gallery, status, found, *rest = self.on_search("", None, folder, min_duration, max_duration, False, page,
                                                       order, 0, like, since, until, progress)
        return (_marked_gallery(gallery, None), status, found, *rest, like, *self.emptied(found))

    def on_more(self, query, example, folder, min_duration, max_duration, rerank, page, order, since, until, shown,
                selected, like, progress=gr.Progress(track_tqdm=True)):
        """One more page; the moment in the player stays marked where the longer page shows it."""
        gallery, status, results, grouped, view, n, more = self.on_search(
            query, example, folder, min_duration, max_duration, rerank, page, order, shown, like, since, until,
            progress)
        return _marked_gallery(gallery, _position_in(view, selected)), status, results, grouped, view, n, more

    def on_order(self, results, order, selected):
        """The gallery in the other order, the moment in the player marked where it now is (it stayed marked at
        its old position, on another moment)."""
        if not results:
            return [], []
        gallery, _, view = self.show(results, order)
        return _marked_gallery(gallery, _position_in(view, selected)), view

    def on_example(self, example, plays=""):
        """Show the example and say that it replaces the words. A clip is shown as :meth:`IndexService.example_clip`
        makes it for the kinds of video the page said its browser plays (``plays``), marked in ``#example-mark``
        where it is the source's own packets (the page asks again, :meth:`on_example_unplayed`, if it shows no
        pictures)."""
        def hidden():  # a dict each: gradio takes the value out of an update it is given
            return gr.update(value=None, visible=False)

        if not example:
            return hidden(), hidden(), "", ""
        note = (f"Searching by the example {literal(os.path.basename(example))}: the words above are not used "
                "while an example is set.")
        if os.path.splitext(example)[1].lower() in IMAGE_EXTENSIONS and not is_animation(example):
            try:
                picture = example_picture(example)
            except ValueError as e:  # said at once, where the browser showed a broken picture
                note = f"The example {literal(os.path.basename(example))} cannot be used: {literal(str(e))}."
                return hidden(), hidden(), note, ""
            return gr.update(value=picture, visible=True), hidden(), note, ""
        clip = self.service.example_clip(example, plays=said_plays(plays))  # what the browser plays
        return hidden(), gr.update(value=clip, visible=True), note, _player_mark(clip)

    def on_example_unplayed(self, example, plays):
        """The browser showed no pictures of the example clip made of its own packets (a kind it said it plays, yet
        does not): the clip again, transcoded, and that kind of video no longer copied for this page."""
        from app.media import kind_of

        plays = " ".join(sorted(said_plays(plays) - {kind_of(example) if example else None}))
        if not example:
            return gr.update(value=None, visible=False), "", plays
        return gr.update(value=self.service.example_clip(example, copy=False), visible=True), "", plays

    # ----------------------------------------------------------------------------------- player and export
    def on_select(self, results, view, evt: gr.SelectData):
        """The moment clicked, selected at once: its details, timeline and In/Out, and the index the export and
        "Moments like this" read. Its preview comes after (:meth:`on_preview`), which may take seconds (a
        transcoded one): before, the selection waited for it, so an Export clicked meanwhile cut the moment before,
        and In/Out typed meanwhile were overwritten when the preview came."""
        if not results or evt.index is None or not 0 <= int(evt.index) < len(view):
            return "", "", gr.update(value=""), gr.update(value=""), -1
        i = view[int(evt.index)]
        d = results[i]
        m = Moment(d["video"], d["start"], d["end"], d["score"], d.get("thumb"))
        details = (f"**{literal(m.name)}** · {clock(m.start)}–{clock(m.end)} · score {m.score:.3f}\n\n"
                   f"{literal(m.path)}")
        when = recorded_text(d.get("recorded"), d.get("recorded_by"))
        if when:
            details += f"\n\n{when}"
        copies = d.get("copies") or []
        if copies:  # the same video kept elsewhere too: one result, its other places named
            details += "\n\nThe same video is also at:" + "".join(f"\n- {literal(c)}" for c in copies)
        return (details, _timeline_html(results, i, self.service.duration_of(m.path)), f"{m.start:g}", f"{m.end:g}",
                i)

    def on_preview(self, results, selected, plays="", copy=True):
        """The selected moment in the player, from its second (a preview clip: :meth:`IndexService.preview`, of the
        source's own packets where the browser plays them: ``plays``, the kinds of video the page said its browser
        plays besides those all do, :data:`app.media.PLAYED_IF_SAID`; transcoded whatever the source where ``copy`` is
        False); where it cannot be made (the video gone), the player empties, the details say why, and nothing stays
        selected."""
        empty, kept = gr.update(value=None, label=PLAYER_LABEL), gr.update()
        if not results or selected is None or not 0 <= int(selected) < len(results):
            return empty, kept, "", kept, kept, kept, kept
        d = results[int(selected)]
        m = Moment(d["video"], d["start"], d["end"], d["score"], d.get("thumb"))
        try:
            clip, offset = self.service.preview(m, plays=said_plays(plays), copy=copy)
        except Exception as e:  # noqa: BLE001
            return empty, _warn(_message(e)), "", "", gr.update(value=""), gr.update(value=""), -1
        return (gr.update(value=clip, label=f"{m.name} from {clock(m.start)}"), kept, _player_mark(clip, copy, offset),
                kept, kept, kept, kept)

    def on_unplayed(self, results, selected, plays):
        """The browser showed no pictures of the selected moment's preview made of its source's own packets (its
        codec one the browser said it plays, yet does not: a GPU's decoder that refuses the video's profile; or a
        damaged file): the moment again, transcoded, and that kind of video no longer copied for this page."""
        from app.media import kind_of

        chosen = bool(results) and selected is not None and 0 <= int(selected) < len(results)
        kind = kind_of(results[int(selected)]["video"]) if chosen else None
        plays = " ".join(sorted(said_plays(plays) - {kind}))
        return (*self.on_preview(results, selected, plays, copy=False), plays)

    def on_export(self, results, selected, t_in, t_out, as_recorded=False):
        if not results or selected is None or not 0 <= int(selected) < len(results):
            gr.Warning("Select a moment first.")
            return gr.update(value=None, visible=False), ""
        d = results[int(selected)]
        m = Moment(d["video"], d["start"], d["end"], d["score"], None, recorded=d.get("recorded"))
        try:
            start = parse_seconds(t_in, "In")
            end = parse_seconds(t_out, "Out")
            path = self.service.export(m, start, end, export_as="recorded" if as_recorded else "h264")
        except Exception as e:  # noqa: BLE001
            return gr.update(value=None, visible=False), _warn(_message(e))
        return gr.update(value=path, visible=True), f"Ready: {literal(os.path.basename(path))}"

    def on_export_all(self, results, as_recorded=False, progress=gr.Progress(track_tqdm=True)):
        """Every moment of the search so far cut into an mp4 (as recorded: the videos' own packets), in one zip to
        download."""
        moments = [Moment(d["video"], d["start"], d["end"], d["score"], None, recorded=d.get("recorded"))
                   for d in results or []]
        try:
            path, failed = self.service.export_all(moments, export_as="recorded" if as_recorded else "h264")
        except Exception as e:  # noqa: BLE001
            return gr.update(value=None, visible=False), _warn(_message(e))
        note = f"Ready: {literal(os.path.basename(path))}"
        note += "".join(f"\n\n⚠️ Not exported: {literal(f)}" for f in failed)
        return gr.update(value=path, visible=True), note

    @staticmethod
    def after_search(results):
        """A new search: "Export these moments" when there are some; the last search's zip is gone."""
        return gr.update(visible=bool(results)), gr.update(value=None, visible=False), ""

    # ------------------------------------------------------------------------------------------ index tab
    REFRESHED = 7  # the outputs on_refresh fills (``refresh_outputs``)

    def on_refresh(self):
        st, error = None, ""
        try:
            st = self.service.status()
        except Exception as e:  # noqa: BLE001
            error = f"\n\n⚠️ {literal(_message(e))}"
        try:
            ov = self.service.overview(status=st)
        except Exception as e:  # noqa: BLE001
            logger.warning("no overview: %s", e)
            ov = None
        suggestions = (ov or {}).get("suggestions") or []
        choices = self.folder_choices()
        # the folder filter's choices only: a folder chosen before the page's load event answered, or before a
        # build in the Index tab ended, stays chosen (it went back to all folders, unsaid)
        return (self.empty_state(), gr.update(choices=choices),
                _status_markdown(st, self.service.index_dir, self.service.watching) + error, _problem_rows(st),
                _overview_markdown(ov),
                gr.update(samples=[[s] for s in suggestions], visible=bool(suggestions)),
                gr.update(choices=[c for c in choices if c[1] != ALL_FOLDERS], value=None))

    def on_counts(self):
        """The Index tab's status and the Search tab's counts as the index is now: after each search, and while the
        app watches its index at each tick, so another tab's build, a cron update or the watch shows on an open
        page (the suggestions and the folder filter stay as they are until the page reloads)."""
        try:
            st = self.service.status()
            ov = self.service.overview(suggest=False, status=st)
        except Exception as e:  # noqa: BLE001 - a build may be replacing files: the next tick
            logger.info("the counts are left as they were: %s", e)
            return gr.update(), gr.update(), gr.update()
        return _status_markdown(st, self.service.index_dir, self.service.watching), _problem_rows(st), \
            _overview_markdown(ov)

    def on_build(self, folder, progress=gr.Progress(track_tqdm=True)):
        progress(0, desc="Loading the model and scanning folders…")
        return self._change_index(lambda: self.service.build(folder), _build_summary)

    def on_update(self, progress=gr.Progress(track_tqdm=True)):
        return self.on_build(None, progress)

    def on_remove(self, folder, filtered=ALL_FOLDERS):
        """Take ``folder`` out of the index; None: the page's confirmation was cancelled (nothing changes). The
        Search tab's folder filter (``filtered``) goes back to all folders when it named that folder or one in it,
        which has nothing left to search; any other stays."""
        if folder is None:
            return (gr.skip(),) * (1 + self.REFRESHED)
        summary, no_index, choices, *rest = self._change_index(lambda: self.service.remove(folder), _remove_summary)
        if filtered and _inside(filtered, folder):
            choices = gr.update(choices=self.folder_choices(), value=ALL_FOLDERS)
        return summary, no_index, choices, *rest

    def _change_index(self, change, summarize):
        """Run ``change`` (a build or a removal); its summary (or its error) and the refreshed Index tab."""
        try:
            report = change()
        except Exception as e:  # noqa: BLE001
            summary = _warn(_message(e))
        else:
            summary = summarize(report)
        return (summary,) + self.on_refresh()

    # ------------------------------------------------------------------------------- endpoints for programs
    def api_search(self, query, example, folder, min_duration, max_duration, rerank, k, since=None, until=None):
        """Moments for a text query or an example image/clip (the example wins), best first: a list of
        {video (full path), name, folder, start, end, score, copies (other paths of the same video), recorded
        (seconds since the epoch, or None), recorded_by}. ``since``/``until``: recording dates (YYYY, YYYY-MM or
        YYYY-MM-DD; empty: no limit). Errors come back with a readable message."""
        try:
            return [m.to_dict() for m in self.run_search(query, example, folder, min_duration, max_duration,
                                                         rerank, k, since, until)]
        except Exception as e:  # noqa: BLE001
            raise gr.Error(html.escape(_message(e), quote=False), print_exception=False) from None

    def api_similar(self, video: str, start: float, end: float | None = None, folder: str = "",
                    min_duration: str = "", max_duration: str = "", k: int = PAGE, since: str = "",
                    until: str = "") -> list[dict]:
        """Moments like ``start``–``end`` seconds of an indexed video (a /search result's ``video``, ``start`` and
        ``end``; ``end`` null: the moment at ``start``), best first, as /search gives them, that moment left out;
        from the index's own vectors. Filters as for /search. Errors come back with a readable message."""
        try:
            like = {"video": video, "start": float(start), "end": None if end is None else float(end)}
            return [m.to_dict() for m in self.run_similar(like, folder, min_duration, max_duration, k, since, until)]
        except Exception as e:  # noqa: BLE001
            raise gr.Error(html.escape(_message(e), quote=False), print_exception=False) from None

    def api_status(self) -> dict | None:
        """The index: model, counts, folders (``missing_folders``: those not there now), files indexed in part and
        failed files (null when there is none)."""
        try:
            st = self.service.status()
        except Exception as e:  # noqa: BLE001
            raise gr.Error(html.escape(_message(e), quote=False), print_exception=False) from None
        if st is None:
            return None
        return {"index": st["index"], "model": st["manifest"]["model"], "files": st["files"],
                "windows": st["windows"], "hours": st["hours"], "folders": st["roots"],
                "missing_folders": st.get("missing_roots", []),
                "partial": [{"path": p, "reason": r} for p, r in st["partial"]],
                "failed": [{"path": p, "reason": r} for p, r in st["failed"]], "pending": len(st["pending"])}


def _build_summary(report) -> str:
    """What the Index tab says after a build (:class:`index.build.BuildReport`)."""
    resumed = f", {report.resumed_windows} resumed from an interrupted build" if report.resumed_windows else ""
    copies = ("" if not report.copies else " (a copy of an indexed video: not embedded again)" if report.added == 1
              else " (1 of them a copy of an indexed video: not embedded again)" if report.copies == 1
              else f" ({report.copies} of them copies of indexed videos: not embedded again)")
    summary = (f"Done in {report.seconds:.0f} s: **{report.added}** new{copies}, {report.changed} changed, "
               f"{report.renamed} renamed, {report.deleted} removed, {report.unchanged} unchanged, "
               f"**{report.failed}** failed, {report.partial} indexed in part; {report.embedded_windows} "
               f"windows embedded{resumed}. The index holds **{report.total_files}** videos.")
    problems = report.failures + report.partials
    if problems:
        names = ", ".join(literal(os.path.basename(p)) for p, _ in problems[:10])
        more = f" and {len(problems) - 10} more" if len(problems) > 10 else ""
        summary += f"\n\nCould not fully index {names}{more}: the reasons are in the table below."
    if report.vanished:
        names = ", ".join(literal(os.path.basename(p)) for p in report.vanished[:10])
        more = f" and {len(report.vanished) - 10} more" if len(report.vanished) > 10 else ""
        summary += (f"\n\nGone while being read (a drive or share unplugged?): {names}{more}. An update indexes "
                    "them once they are back.")
    if report.unreadable:
        summary += ("\n\nCould not read " + ", ".join(f"{literal(d)} ({literal(why)})" for d, why in report.unreadable)
                    + ": their videos stay in the index as they were.")
    missing = getattr(report, "missing_roots", [])
    if missing:
        summary += (f"\n\nNot found, so not scanned: {', '.join(literal(d) for d in missing)} (a drive not "
                    "mounted?). Its videos stay in the index as they were; `vtr index update --forget-missing` drops "
                    "them.")
    return summary


def _remove_summary(report) -> str:
    """What the Index tab says after taking a folder out (:class:`index.build.RemoveReport`)."""
    videos = "1 video" if report.files == 1 else f"{report.files} videos"
    summary = f"Took **{videos}** ({report.windows} windows) out of the index. The files themselves are untouched."
    if report.excluded:
        summary += (f"\n\nUpdates leave out {', '.join(literal(p) for p in report.excluded)} from now on; adding "
                    "it as a folder again indexes it again.")
    return summary


# ------------------------------------------------------------------------------------------------- layout
def _query_row(ui: SimpleNamespace) -> None:
    ui.no_index = gr.Markdown(visible=False, elem_id="no-index")
    ui.overview = gr.Markdown(elem_id="overview")
    ui.unseen = gr.HTML(visible=False)  # where the progress of quiet refreshes goes (see _index_events)
    with gr.Row(equal_height=True):
        ui.query = gr.Textbox(placeholder="Describe a moment, e.g. “a dog catches a frisbee on the beach”",
                              show_label=False, scale=8, elem_id="query", autofocus=True, max_length=500)
        ui.search_btn = gr.Button("Search", variant="primary", scale=1, min_width=120, elem_id="search")
    ui.suggest = gr.Dataset(components=["textbox"], samples=[], label="Try", visible=False, elem_id="suggestions")


def _search_options(ui: SimpleNamespace, handlers: _Handlers) -> None:
    """The folded-away part of the Search tab: an example instead of words, filters, re-ranking, page size."""
    with gr.Accordion("Search by example, filters", open=False, elem_id="options"), gr.Row():
        with gr.Column():
            ui.example = gr.File(label="Example image or short clip (instead of words)", file_types=EXAMPLE_TYPES,
                                 type="filepath", height=140, elem_id="example")
            ui.example_image = gr.Image(label="Example", visible=False, interactive=False, height=140,
                                        elem_id="example-image")
            ui.example_video = gr.Video(label="Example", visible=False, interactive=False, height=140,
                                        elem_id="example-video")
            ui.example_note = gr.Markdown(elem_id="example-note")
        with gr.Column():
            # Custom values: programs may name any folder (it only narrows the search).
            ui.folder = gr.Dropdown(label="Folder", choices=handlers.folder_choices(), value=ALL_FOLDERS,
                                    allow_custom_value=True, elem_id="folder")
            with gr.Row():
                # Text boxes, not gr.Number: Gradio's number box shows and sends 0 for "empty" once it is on
                # screen, and "at most 0 s" matched nothing. Empty: no limit.
                ui.min_duration = gr.Textbox(label="Videos at least (s)", placeholder="no limit", max_lines=1,
                                             elem_id="min-duration")
                ui.max_duration = gr.Textbox(label="Videos at most (s)", placeholder="no limit", max_lines=1,
                                             elem_id="max-duration")
            with gr.Row():  # the day, month or year: from the video's tags, else its name, else the file's time
                ui.since = gr.Textbox(label="Recorded from", placeholder="e.g. 2023-07", max_lines=1,
                                      elem_id="since")
                ui.until = gr.Textbox(label="Recorded until", placeholder="e.g. 2023-08", max_lines=1,
                                      elem_id="until")
        with gr.Column():
            # Offered only for a model whose matching head was trained: an untrained head orders moments worse
            # than the search itself.
            ui.rerank = gr.Checkbox(label="Re-rank with the matching head (ITM): slower, more precise; words only",
                                    value=False, elem_id="rerank", visible=handlers.service.can_rerank())
            ui.k = gr.Slider(1, 60, value=PAGE, step=1, label="Moments per page", elem_id="page-size")


def _results_and_player(ui: SimpleNamespace) -> None:
    """The gallery of moments (best first or by video) beside the player, its timeline and the export."""
    ui.status = gr.Markdown(elem_id="status")
    with gr.Row():
        with gr.Column(scale=3):
            ui.order = gr.Radio([BEST_FIRST, BY_VIDEO], value=BEST_FIRST, show_label=False, elem_id="order")
            ui.gallery = gr.Gallery(label="Moments", show_label=False, columns=4, height="auto", allow_preview=False,
                                    object_fit="cover", elem_id="results", interactive=False)
            ui.more_btn = gr.Button("More results", visible=False, elem_id="more")
            ui.export_all_btn = gr.Button("Export these moments (a zip of mp4s)", visible=False, elem_id="export-all",
                                          size="sm")
            ui.export_all_file = gr.File(label="Exported moments", visible=False, interactive=False,
                                         elem_id="export-all-file")
            ui.export_all_note = gr.Markdown(elem_id="export-all-note")
            ui.grouped = gr.Markdown(elem_id="grouped")
        with gr.Column(scale=2):
            ui.player = gr.Video(label=PLAYER_LABEL, autoplay=True, interactive=False, elem_id="player",
                                 buttons=["download"])
            ui.seek_to = gr.HTML(elem_id="seek-to", visible="hidden")
            ui.plays = gr.Textbox(elem_id="plays", visible="hidden")  # what the browser plays (PLAYS_JS)
            ui.unplayed = gr.Button(elem_id="unplayed", visible="hidden")  # clicked by PAGE_JS
            ui.example_mark = gr.HTML(elem_id="example-mark", visible="hidden")  # the example player's: PAGE_JS
            ui.example_unplayed = gr.Button(elem_id="example-unplayed", visible="hidden")
            ui.timeline = gr.HTML(elem_id="timeline")
            ui.details = gr.Markdown(elem_id="details")
            ui.like_btn = gr.Button("Moments like this", elem_id="like", size="sm")
            with gr.Row(equal_height=True):
                ui.t_in = gr.Textbox(label="In (s)", max_lines=1, elem_id="export-in", min_width=80)
                ui.t_out = gr.Textbox(label="Out (s)", max_lines=1, elem_id="export-out", min_width=80)
                ui.export_btn = gr.Button("Export mp4", elem_id="export", min_width=100)
            ui.as_recorded = gr.Checkbox(
                label="Export as recorded", value=False, elem_id="as-recorded",
                info="The video's own codec, size and HDR (an iPhone's 4K HEVC as it was), for players that play the "
                     "video. Off: H.264 up to 1080p, which every player plays. For “Export mp4” and “Export these "
                     "moments”.")
            ui.export_file = gr.File(label="Exported moment", visible=False, interactive=False,
                                     elem_id="export-file")
            ui.export_note = gr.Markdown(elem_id="export-note")


def _index_tab(ui: SimpleNamespace) -> None:
    ui.index_status = gr.Markdown(elem_id="index-status")
    with gr.Row(equal_height=True):
        ui.new_folder = gr.Textbox(label="Add a folder of videos (on this computer)", scale=8,
                                   placeholder="/home/me/Videos", elem_id="new-folder")
        ui.add_btn = gr.Button("Add and index", variant="primary", scale=1, min_width=140, elem_id="add")
    ui.update_btn = gr.Button("Update: re-scan the indexed folders for new, changed and deleted videos",
                              elem_id="update")
    with gr.Row(equal_height=True):
        ui.remove_folder = gr.Dropdown(label="Take a folder out of the index (its videos stay on disk)", choices=[],
                                       value=None, allow_custom_value=True, scale=8, elem_id="remove-folder")
        ui.remove_btn = gr.Button("Take out", variant="stop", scale=1, min_width=140, elem_id="remove")
    ui.build_summary = gr.Markdown(elem_id="build-summary")
    ui.failures = gr.Dataframe(headers=["file", "why it could not be (fully) indexed"], value=[],
                               label="Files indexed in part or not at all", interactive=False, wrap=True,
                               elem_id="failures")


# ------------------------------------------------------------------------------------------------- events
def _search_events(ui: SimpleNamespace, h: _Handlers) -> None:
    filters = [ui.query, ui.example, ui.folder, ui.min_duration, ui.max_duration, ui.rerank, ui.k, ui.order, ui.since,
               ui.until]
    search_outputs = [ui.gallery, ui.status, ui.results, ui.grouped, ui.view, ui.shown, ui.more_btn]
    searching = dict(api_visibility="private", concurrency_id="index", concurrency_limit=1,
                     show_progress_on=[ui.gallery])
    # A new search empties the player and what named the last moment, and offers the export of its own moments, in
    # its own outputs (_Handlers.emptied)
    new_search_outputs = search_outputs + [ui.like] + [getattr(ui, name) for name in EMPTIED]
    # ... then the counts as the search saw the index (another tab or process may have changed it since the page
    # loaded): without a flash of progress over them (see _index_events)
    counts = dict(fn=h.on_counts, inputs=None, outputs=[ui.index_status, ui.failures, ui.overview],
                  api_visibility="private", show_progress="hidden", show_progress_on=[ui.unseen])
    gr.on([ui.query.submit, ui.search_btn.click], h.on_new_search, filters, new_search_outputs,
          **searching).then(**counts)
    # Moments like the one in the player: new results, so the player empties as for a new search.
    ui.like_btn.click(h.on_like, [ui.results, ui.selected, ui.folder, ui.min_duration, ui.max_duration, ui.k, ui.order,
                                  ui.since, ui.until], new_search_outputs, **searching).then(**counts)
    ui.more_btn.click(h.on_more, filters + [ui.shown, ui.selected, ui.like], search_outputs, **searching)
    ui.order.change(h.on_order, [ui.results, ui.order, ui.selected], [ui.gallery, ui.view], api_visibility="private")
    ui.suggest.click(lambda s: s[0], [ui.suggest], [ui.query], api_visibility="private").then(
        h.on_new_search, filters, new_search_outputs, **searching).then(**counts)
    # The moment is selected at once, its preview made after: an export or In/Out typed meanwhile are its own
    previewed = [ui.player, ui.details, ui.seek_to, ui.timeline, ui.t_in, ui.t_out, ui.selected]
    ui.gallery.select(h.on_select, [ui.results, ui.view], [ui.details, ui.timeline, ui.t_in, ui.t_out, ui.selected],
                      js=SCROLL_TO_PLAYER_JS, api_visibility="private", show_progress="hidden").then(
        h.on_preview, [ui.results, ui.selected, ui.plays], previewed, api_visibility="private", concurrency_limit=2,
        show_progress_on=[ui.player])
    ui.unplayed.click(h.on_unplayed, [ui.results, ui.selected, ui.plays], previewed + [ui.plays],
                      api_visibility="private", concurrency_limit=2, show_progress_on=[ui.player])
    ui.export_btn.click(h.on_export, [ui.results, ui.selected, ui.t_in, ui.t_out, ui.as_recorded],
                        [ui.export_file, ui.export_note], api_visibility="private", concurrency_limit=2,
                        show_progress_on=[ui.export_file])
    ui.export_all_btn.click(h.on_export_all, [ui.results, ui.as_recorded], [ui.export_all_file, ui.export_all_note],
                            api_visibility="private", concurrency_limit=1, show_progress_on=[ui.export_all_note])
    ui.example.change(h.on_example, [ui.example, ui.plays],
                      [ui.example_image, ui.example_video, ui.example_note, ui.example_mark], api_visibility="private")
    ui.example_unplayed.click(h.on_example_unplayed, [ui.example, ui.plays],
                              [ui.example_video, ui.example_mark, ui.plays], api_visibility="private")


def _index_events(ui: SimpleNamespace, h: _Handlers, page: gr.Blocks) -> None:
    refresh_outputs = [ui.no_index, ui.folder, ui.index_status, ui.failures, ui.overview, ui.suggest,
                       ui.remove_folder]
    page.load(h.on_refresh, None, refresh_outputs, api_visibility="private")
    page.load(None, None, [ui.plays], js=PLAYS_JS, api_visibility="private")
    if h.service.watching:  # the counts follow the watch's updates while the page stays open
        # show_progress="hidden" alone still flashes a "0.0s" over Markdown outputs at each tick (gradio 6.31):
        # the progress goes to an element never shown instead
        gr.Timer(max(h.service.watching, WATCH_TICK_MIN_S)).tick(
            h.on_counts, None, [ui.index_status, ui.failures, ui.overview], api_visibility="private",
            show_progress="hidden", show_progress_on=[ui.unseen])
    building = dict(api_visibility="private", concurrency_id="build", concurrency_limit=1,
                    show_progress_on=[ui.build_summary])
    ui.add_btn.click(h.on_build, [ui.new_folder], [ui.build_summary] + refresh_outputs, **building)
    ui.update_btn.click(h.on_update, None, [ui.build_summary] + refresh_outputs, **building)
    # The browser asks first: putting the videos back means embedding them again. Cancel sends None.
    ui.remove_btn.click(h.on_remove, [ui.remove_folder, ui.folder], [ui.build_summary] + refresh_outputs,
                        js=CONFIRM_REMOVE_JS, **building)


def _api_endpoints(ui: SimpleNamespace, h: _Handlers) -> None:
    """For programs (gradio_client): ``/search`` over the page's filters (less the gallery's order), ``/similar``
    (moments like one of its results), ``/status``."""
    filters = [ui.query, ui.example, ui.folder, ui.min_duration, ui.max_duration, ui.rerank, ui.k, ui.since, ui.until]
    api_out = gr.JSON(visible=False)
    gr.Button(visible=False).click(h.api_search, filters, api_out, api_name="search", concurrency_id="index",
                                   concurrency_limit=1)
    gr.api(h.api_similar, api_name="similar")
    gr.api(h.api_status, api_name="status")


def build_ui(service: IndexService) -> gr.Blocks:
    """The page for ``service``'s index (launch it with :func:`app.server.launch_app`)."""
    handlers = _Handlers(service)
    # delete_cache: Gradio keeps a copy of every file it serves; drop copies older than 6 h, hourly.
    with gr.Blocks(title="vtr — find moments in your videos", analytics_enabled=False,
                   delete_cache=(3600, 6 * 3600)) as page:
        ui = SimpleNamespace(
            results=gr.State([]),  # the moments of the current search, best first (dicts)
            view=gr.State([]),  # gallery position -> index into results, in the order shown
            shown=gr.State(0),  # how many moments the search asked for so far
            selected=gr.State(-1),  # index into results of the moment in the player
            like=gr.State(None),  # the moment the results are like ({video, start, end}), or None: words / example
        )
        gr.Markdown("# vtr\nType a sentence, watch the moments.", elem_id="vtr-header")
        with gr.Tabs():
            with gr.Tab("Search", id="search"):
                _query_row(ui)
                _search_options(ui, handlers)
                _results_and_player(ui)
            with gr.Tab("Index", id="index"):
                _index_tab(ui)
        _search_events(ui, handlers)
        _index_events(ui, handlers, page)
        _api_endpoints(ui, handlers)
    return page

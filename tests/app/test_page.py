"""The search page as a person uses it, in Debian's chromium: filters, what typed text becomes, export, the player."""

import pytest

from tests.app.test_browser import open_options, open_page


def search_box(page):
    return page.locator("#query textarea, #query input").first


def test_opening_the_filters_keeps_every_search_working(browser, running_app, tmp_path):
    page = open_page(browser, running_app.url, tmp_path)
    open_options(page)
    inputs = page.locator("#min-duration input, #max-duration input")
    inputs.first.wait_for()
    assert [inputs.nth(i).input_value() for i in range(inputs.count())] == ["", ""]  # empty: no limit
    search_box(page).fill("a walk in the park")
    search_box(page).press("Enter")
    page.locator("#results .thumbnail-item").first.wait_for()
    assert "moments in" in page.locator("#status").inner_text()
    # a limit typed, then erased again, is no limit either
    box = page.locator("#max-duration input")
    box.fill("1")
    search_box(page).press("Enter")
    page.wait_for_function("() => document.querySelector('#status').innerText.includes('No moments match')")
    box.fill("")
    search_box(page).press("Enter")
    page.wait_for_function("() => document.querySelector('#status').innerText.includes('moments in')")
    assert not page.errors, page.errors
    page.close()


def test_typed_html_and_markdown_show_literally(browser, running_app, tmp_path):
    page = open_page(browser, running_app.url, tmp_path)
    requested = []
    page.on("request", lambda r: requested.append(r.url))
    typed = "<img src=x> **bold** [link](javascript:alert(1)) _it_ `code`"
    search_box(page).fill(typed)
    search_box(page).press("Enter")
    page.locator("#results .thumbnail-item").first.wait_for()
    status = page.locator("#status")
    assert typed in status.inner_text()
    assert status.locator("img, em, a, code").count() == 0
    assert status.locator("strong", has_text="bold").count() == 0  # the counts are bold; the query is not
    assert not [u for u in requested if u.rstrip("/").endswith("/x")], requested
    assert not page.errors, page.errors
    page.close()


def test_a_long_query_is_quoted_short(browser, running_app, tmp_path):
    """The status line quotes the first words of a long query, not all of it (500 characters filled half the page)."""
    page = open_page(browser, running_app.url, tmp_path)
    typed = " ".join(f"word{i}" for i in range(80))  # 469 characters
    search_box(page).fill(typed)
    search_box(page).press("Enter")
    page.locator("#results .thumbnail-item").first.wait_for()
    first_line = page.locator("#status").inner_text().splitlines()[0]
    assert "word0 word1" in first_line and "word79" not in first_line
    assert "…”" in first_line and len(first_line) < 160, first_line
    assert not page.errors, page.errors
    page.close()


def run_search(page, words):
    search_box(page).fill(words)
    search_box(page).press("Enter")
    page.wait_for_function("() => /moments in|No moments/.test(document.querySelector('#status').innerText)")


def captions(page) -> list[str]:
    return page.locator("#results .thumbnail-item").all_inner_texts()


def set_page_size(page, size, n: int) -> None:
    """Type ``n`` in the page-size box and leave it (which commits it: the slider beside it moves to ``n``). Typed
    while the opening panel is still rendering (a loaded machine: CI twice), the commit can be lost, as no person
    could type that fast: once before the slider moved, once after it (both went back to 24, and the search asked
    for 24). So the value must still be there a moment later, and it is typed again, at most three times, before
    the test fails."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    size.wait_for(state="visible")
    slider = f"document.querySelector('#page-size input[type=range]').value === '{n}'"
    for _ in range(3):
        size.fill(str(n))
        size.press("Tab")
        try:
            page.wait_for_function(f"() => {slider}", timeout=15000)
        except PlaywrightTimeout:
            continue
        page.wait_for_timeout(1000)
        if page.evaluate(f"() => {slider}") and size.input_value() == str(n):
            return
    raise AssertionError(f"the page-size slider never took {n} (box: {size.input_value()!r})")


def test_best_first_paging_and_grouped_view(browser, running_app, tmp_path):
    page = open_page(browser, running_app.url, tmp_path)
    open_options(page)
    size = page.locator("#page-size input[type=number]")
    set_page_size(page, size, 3)
    asked = []
    page.on("request", lambda r: asked.append(r.post_data) if "queue/join" in r.url else None)
    run_search(page, "a walk in the park")
    assert len(captions(page)) == 3, (size.input_value(), asked)
    page.locator("#more").click()  # the next page: 6 asked; this small index merges its 8 windows into 5
    page.wait_for_function("() => document.querySelectorAll('#results .thumbnail-item').length > 3")
    best_first = captions(page)
    assert len(best_first) == 5 and not page.locator("#more").is_visible()  # nothing more to show
    scores = [float(c.rsplit("·", 1)[1]) for c in best_first]
    assert scores == sorted(scores, reverse=True)  # best first across videos
    names = [c.split("·")[0].strip() for c in best_first]
    assert len([i for i in range(1, 5) if names[i] != names[i - 1]]) > len(set(names)) - 1  # videos interleave

    page.locator("#order").get_by_text("Grouped by video").click()
    page.wait_for_function("(before) => Array.from(document.querySelectorAll('#results .thumbnail-item'))"
                           ".map(e => e.innerText).join('|') !== before", arg="|".join(best_first))
    grouped = captions(page)
    assert sorted(grouped) == sorted(best_first)
    names = [c.split("·")[0].strip() for c in grouped]
    assert len([i for i in range(1, 5) if names[i] != names[i - 1]]) == len(set(names)) - 1  # videos together
    assert not page.errors, page.errors
    page.close()


def _first_frame_in_the_browser(page, clip) -> tuple[float, "np.ndarray"]:
    """The duration Chromium gives the MP4 at ``clip`` and the RGB of the first frame it shows."""
    import base64

    import numpy as np

    got = page.evaluate("""async (data) => {
        const v = document.createElement('video');
        v.muted = true;
        v.src = URL.createObjectURL(new Blob([Uint8Array.from(atob(data), c => c.charCodeAt(0))], {type: 'video/mp4'}));
        const late = (what) => new Promise((_, bad) => setTimeout(() => bad(new Error(what + ': no event in 20 s')),
                                                                  20000));  // a failure, not a test that hangs
        await Promise.race([late('loadeddata'), new Promise((ok, bad) => {
            v.onloadeddata = ok; v.onerror = () => bad(new Error(v.error.message)); })]);
        await Promise.race([late('seeked'), new Promise(ok => { v.onseeked = ok; v.currentTime = 0; })]);
        const c = document.createElement('canvas');
        c.width = v.videoWidth; c.height = v.videoHeight;
        const g = c.getContext('2d');
        g.drawImage(v, 0, 0);
        return [v.duration, c.width, c.height, Array.from(g.getImageData(0, 0, c.width, c.height).data)];
    }""", base64.b64encode(clip.read_bytes()).decode())
    duration, width, height, rgba = got
    return duration, np.array(rgba, np.uint8).reshape(height, width, 4)[..., :3]


def test_selected_moment_plays_in_context_and_exports(browser, running_app, collection, tmp_path):
    import av
    import numpy as np

    page = open_page(browser, running_app.url, tmp_path)
    run_search(page, "a walk in the park")
    items = page.locator("#results .thumbnail-item")
    texts = captions(page)
    pick = next(i for i, t in enumerate(texts) if not t.split("·")[1].strip().startswith("0:00"))
    name = texts[pick].split("·")[0].strip()
    start = sum(int(x) * 60 ** k for k, x in enumerate(reversed(texts[pick].split("·")[1].split("–")[0].split(":"))))
    items.nth(pick).click()
    page.wait_for_function("() => { const v = document.querySelector('#player video');"
                           " return v && v.readyState >= 1 && v.duration > 0; }")
    # the clip starts up to 10 s before the moment, and the player is put at the moment
    page.wait_for_function(f"() => document.querySelector('#player video').currentTime >= {start} - 0.6")
    same_video = sum(t.split("·")[0].strip() == name for t in texts)
    assert page.locator("#timeline .hit").count() == same_video
    assert page.locator("#timeline .hit.selected").count() == 1

    page.locator("#export-in input, #export-in textarea").first.fill("1.5")
    page.locator("#export-out input, #export-out textarea").first.fill("4.5")
    page.locator("#export").click()
    link = page.locator("#export-file a").first
    link.wait_for()
    with page.expect_download() as info:
        link.click()
    download = info.value
    assert download.suggested_filename == f"{name.rsplit('.', 1)[0]} 0m02s-0m05s.mp4"
    saved = tmp_path / "export.mp4"
    download.save_as(saved)
    with av.open(str(saved)) as c:
        frames = list(c.decode(video=0))
    assert len(frames) == 30  # 3.0 s at 10 fps: exactly the span asked for
    # the clip is the video's own packets from its keyframe at 0 s, the frames before 1.5 s hidden by its edit list:
    # Chromium starts it at 1.5 s, and ends it at 4.5 s
    with av.open(str(saved)) as c:
        assert sum(1 for packet in c.demux(video=0) if packet.size) == 45
    with av.open(str(next(collection.rglob(name)))) as c:
        source = [f.to_ndarray(format="rgb24").astype(int) for f in c.decode(video=0)]
    duration, shown = _first_frame_in_the_browser(page, saved)
    assert duration == pytest.approx(3.0, abs=0.01)
    assert int(np.argmin([np.abs(shown - f).mean() for f in source])) == 15
    page.screenshot(path=str(tmp_path / "export.png"), full_page=True)
    assert not page.errors, page.errors
    page.close()


def test_a_moment_is_selected_and_exported_while_its_preview_is_made(browser, running_app, tmp_path, monkeypatch):
    """A preview may take seconds (a transcoded one: HEVC, 4K). The moment clicked is selected at once, its details
    and In/Out shown, and Export cuts it with the In/Out typed while its preview is still being made (held here until
    the export is done); when the preview comes, the typed In/Out stay. Before, the selection waited for the preview:
    an Export clicked meanwhile cut the moment selected before, and In/Out typed meanwhile were overwritten."""
    import threading

    from app.service import IndexService

    page = open_page(browser, running_app.url, tmp_path)
    run_search(page, "a walk in the park")
    names = [t.split("·")[0].strip() for t in captions(page)]
    other = next(i for i, name in enumerate(names) if name != names[0])
    page.locator("#results .thumbnail-item").first.click()
    page.wait_for_function("(n) => document.querySelector('#player').innerText.includes(n + ' from')", arg=names[0])
    release, made = threading.Event(), IndexService.preview

    def held(self, moment, *args, **kwargs):
        release.wait(120)
        return made(self, moment, *args, **kwargs)

    monkeypatch.setattr(IndexService, "preview", held)
    try:
        page.locator("#results .thumbnail-item").nth(other).click()
        page.wait_for_function("(n) => document.querySelector('#details').innerText.includes(n)", arg=names[other])
        page.locator("#export-in input, #export-in textarea").first.fill("0.5")
        page.locator("#export-out input, #export-out textarea").first.fill("2.5")
        page.locator("#export").click()
        page.wait_for_function("(n) => document.querySelector('#export-note').innerText.includes(n)",
                               arg=f"Ready: {names[other].rsplit('.', 1)[0]} 0m01s-0m03s.mp4")
    finally:
        release.set()
    page.wait_for_function("(n) => document.querySelector('#player').innerText.includes(n + ' from')",
                           arg=names[other])
    assert page.locator("#export-in input, #export-in textarea").first.input_value() == "0.5"
    assert page.locator("#export-out input, #export-out textarea").first.input_value() == "2.5"
    assert not page.errors, page.errors
    page.close()


def test_a_moment_clicked_as_the_results_appear_stays_selected(browser, running_app, tmp_path):
    """A new search emptied the player and the selection in an event of its own, sent after the results were shown:
    a moment clicked before that event ran was selected and then emptied, and its preview never came (on a loaded
    machine, 3 clicks of 25, and once in the suite). Here the events the page sends after the results are held until
    the clicked moment plays; once they ran, it is still selected and playing."""
    page = open_page(browser, running_app.url, tmp_path)
    page.wait_for_function("() => document.querySelector('#overview').innerText.includes('Searching')")  # loaded
    held, holding = [], [True]

    def hold(route):
        if holding[0] and "a walk in the park" not in (route.request.post_data or ""):
            held.append(route)  # answered below
        else:
            route.fallback()

    page.route("**/queue/join*", hold)
    run_search(page, "a walk in the park")
    for _ in range(100):  # the first event after the search (the others follow it)
        if held:
            break
        page.wait_for_timeout(100)
    assert held, "the page sent nothing after the search"
    holding[0] = False
    name = captions(page)[0].split("·")[0].strip()
    page.locator("#results .thumbnail-item").first.click()
    playing = ("(n) => { const v = document.querySelector('#player video'); return v && v.readyState >= 1 &&"
               " document.querySelector('#player').innerText.includes(n + ' from'); }")
    page.wait_for_function(playing, arg=name)
    for route in held:
        route.fallback()
    for route in held:
        route.request.response()  # taken by the server
    for _ in range(50):  # 5 s for what the held events write (an emptied player came in well under 1 s)
        assert page.evaluate(playing, name), f"emptied: {page.locator('#player').inner_text()!r}"
        assert name in page.locator("#details").inner_text()
        page.wait_for_timeout(100)
    assert not page.errors, page.errors
    page.close()

#: Makes Chromium say it plays HEVC, which this build of it cannot decode
SAYS_IT_PLAYS_HEVC = """(() => {
  const asked = HTMLMediaElement.prototype.canPlayType;
  HTMLMediaElement.prototype.canPlayType = function (type) {
    return type.includes('hvc1') ? 'probably' : asked.call(this, type);
  };
})();"""
#: Makes Chromium say its machine decodes every kind of video in hardware at 4K60 (on this machine it decodes in
#: software, and says so)
SAYS_ITS_GPU_DECODES_4K = """(() => {
  navigator.mediaCapabilities.decodingInfo = async () => ({supported: true, smooth: true, powerEfficient: true});
})();"""


#: Makes Chromium's mediaCapabilities answer as a browser that shows HLG (not PQ) does: it knows the transfer
#: question (refuses a transfer that does not exist, as Chromium does) and decodes every kind, in software
SAYS_IT_SHOWS_HLG = """(() => {
  navigator.mediaCapabilities.decodingInfo = async (config) => {
    const transfer = config.video.transferFunction;
    if (transfer !== undefined && !['srgb', 'pq', 'hlg'].includes(transfer)) throw new TypeError('not a transfer');
    return {supported: transfer !== 'pq', smooth: true, powerEfficient: false};
  };
})();"""
#: ... and as one that answers without weighing the transfer: "supported", whatever it is asked
ANSWERS_BLIND_TO_HDR = """(() => {
  navigator.mediaCapabilities.decodingInfo = async () => ({supported: true, smooth: true, powerEfficient: true});
})();"""


def test_the_page_says_which_hdr_videos_its_browser_shows(browser, tmp_path):
    """The page asks mediaCapabilities whether its browser shows each HDR kind of video (HLG, PQ), and says so only
    where the browser weighs the question: this Chromium (which shows no HDR here) says no HDR word; made to show
    HLG, it says the HLG words at 1080p (not at 4K: not decoded in hardware) and no PQ one; a browser that answers
    "supported" to anything, the transfer unread, is asked nothing about HDR (its 4K answers stand)."""
    from app.media import MEDIA_ASKED
    from app.ui import PLAYS_JS

    hdr = {q["word"] for q in MEDIA_ASKED if q["transfer"]}
    large = {q["word"] for q in MEDIA_ASKED if q["efficient"] and not q["transfer"]}
    said = {}
    for name, init in (("chromium", None), ("hlg", SAYS_IT_SHOWS_HLG), ("blind", ANSWERS_BLIND_TO_HDR)):
        page = browser.new_page()
        if init:
            page.add_init_script(init)
        page.goto("about:blank")
        said[name] = set(page.evaluate(PLAYS_JS)[0].split())
        page.close()
    assert not said["chromium"] & hdr, said["chromium"]
    assert said["hlg"] & hdr == {"hevc.10+hlg", "av1.10+hlg", "vp9.10+hlg"}, said["hlg"]
    assert not said["blind"] & hdr and large <= said["blind"], said["blind"]


def _shown(page) -> dict:
    """What the player shows once it plays: its clip's name and its pictures' width (0: sound alone)."""
    page.wait_for_function("() => { const v = document.querySelector('#player video');"
                           " return v && v.readyState >= 2 && v.currentTime > 0.3; }")
    return page.evaluate("() => { const v = document.querySelector('#player video');"
                         " return {clip: v.currentSrc.split('/').pop(), width: v.videoWidth}; }")


def test_a_browser_is_shown_copies_it_plays_and_transcodes_of_what_it_cannot(browser, app_model, tmp_path,
                                                                              monkeypatch):
    """The page asks its browser which kinds of video it plays besides those every browser plays (``canPlayType``),
    and which its machine decodes in hardware at 4K (``mediaCapabilities``). This Chromium plays AV1: a moment of an
    AV1 video is previewed as its own packets, and shown. It cannot decode HEVC and says so: an iPhone's HEVC moment
    is transcoded, and shown. Made to say it plays HEVC, it is given the copy, plays its sound alone (as Chromium
    plays an MP4 whose video it cannot decode), and the page asks for the moment again: the transcode, shown. Videos
    larger than 1080p (here: the limit made smaller than these) are transcoded for it, as it decodes in software, and
    copied where it is made to say its GPU decodes them (AV1; not HEVC, which it still does not play). Before, AV1
    was transcoded as HEVC is, and every video larger than 1080p. The HEVC moment exports as recorded (its own
    packets) with "Export as recorded" ticked, as H.264 without. The HEVC video set as the example is copied and
    then transcoded as its moment is (before, always transcoded)."""
    import av

    from app import media
    from app.media import is_copied
    from app.server import launch_app
    from app.service import IndexService
    from index import build_index
    from tests.app.conftest import free_port
    from tests.index.media import textured_frames
    from tests.videos import write_video

    folder = tmp_path / "videos"
    folder.mkdir()
    write_video(folder / "IMG_0001.MOV", textured_frames(8, 1, 10, height=96, width=128), fps=10, codec="libx265",
                audio_seconds=8, options={"x265-params": "log-level=error"})
    write_video(folder / "download.mp4", textured_frames(8, 2, 10, height=96, width=128), fps=10,
                codec="libsvtav1", audio_seconds=8, options={})
    build_index([str(folder)], str(tmp_path / "videos.idx"), model=app_model, workers=0, progress=False,
                window_policy="stride")
    made, previews = IndexService.preview, []

    def recorded(self, moment, *args, **kwargs):
        clip, offset = made(self, moment, *args, **kwargs)
        previews.append(is_copied(clip))
        return clip, offset

    monkeypatch.setattr(IndexService, "preview", recorded)
    made_example, examples = IndexService.example_clip, []

    def example_recorded(self, path, *args, **kwargs):
        clip = made_example(self, path, *args, **kwargs)
        examples.append(is_copied(clip))
        return clip

    monkeypatch.setattr(IndexService, "example_clip", example_recorded)
    passes = [  # what the browser is made to say, whether the videos count as larger than 1080p, and for each video
        # whether the previews the app made of its moment, in order, were copies
        (None, False, {"download.mp4": [True], "IMG_0001.MOV": [False]}),
        (SAYS_IT_PLAYS_HEVC, False, {"download.mp4": [True], "IMG_0001.MOV": [True, False]}),
        (None, True, {"download.mp4": [False], "IMG_0001.MOV": [False]}),
        (SAYS_ITS_GPU_DECODES_4K, True, {"download.mp4": [True], "IMG_0001.MOV": [False]}),
        (SAYS_IT_PLAYS_HEVC, False, {"IMG_0001.MOV": [False]}),  # after the example's copy showed no pictures
    ]
    app = launch_app(str(tmp_path / "videos.idx"), port=free_port(), model=app_model, quiet=True)
    try:
        for number, (says, large, copies) in enumerate(passes):
            monkeypatch.setattr(media, "COPY_MAX_PIXELS", 128 * 96 - 1 if large else 1920 * 1088)
            page = open_page(browser, app.url, tmp_path, init_script=says)
            if number == 4:  # the HEVC clip set as the example: copied, shown no pictures, then the transcode; and
                # the page no longer takes HEVC copies for its moments either
                open_options(page)
                page.locator("#example input[type=file]").set_input_files(str(folder / "IMG_0001.MOV"))
                page.wait_for_function("() => { const v = document.querySelector('#example-video video');"
                                       " return v && v.readyState >= 1 && v.videoWidth === 128; }")
                shown = page.evaluate("() => document.querySelector('#example-video video').currentSrc")
                assert examples == [True, False] and ".copy." not in shown, (examples, shown)
            run_search(page, "anything")
            names = [t.split("·")[0].strip() for t in captions(page)]
            for name, copied in copies.items():
                del previews[:]
                page.locator("#results .thumbnail-item").nth(names.index(name)).click()
                page.wait_for_function("(n) => document.querySelector('#player').innerText.includes(n + ' from')",
                                       arg=name)
                shown = _shown(page)
                assert shown["width"] == 128 and (".copy." in shown["clip"]) == copied[-1], (number, name, shown)
                assert previews == copied, (number, name, previews)
            if number == 0:  # the HEVC moment in the player: exported as recorded, then as H.264
                link = "() => { const a = document.querySelector('#export-file a'); return a ? a.href : ''; }"
                for as_recorded, codec in ((True, "hevc"), (False, "h264")):
                    page.locator("#as-recorded input").set_checked(as_recorded)
                    before = page.evaluate(link)
                    page.locator("#export").click()  # each way its own file (the link changes)
                    page.wait_for_function(f"(before) => ({link})() !== before", arg=before)
                    assert "IMG_0001 0m00s" in page.locator("#export-note").inner_text()
                    with page.expect_download() as info:
                        page.locator("#export-file a").first.click()
                    info.value.save_as(tmp_path / f"{codec}.mp4")
                    with av.open(str(tmp_path / f"{codec}.mp4")) as c:
                        assert c.streams.video[0].codec_context.name == codec
                        assert c.metadata["comment"].endswith(" as recorded") == as_recorded
            page.screenshot(path=str(tmp_path / f"codecs{number}.png"), full_page=True)
            assert not page.errors, page.errors
            page.close()
    finally:
        app.close()


def test_on_a_phone_the_player_comes_into_view(browser, running_app, tmp_path):
    page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    page.set_default_timeout(60_000)
    page.goto(running_app.url)
    run_search(page, "a walk in the park")
    items = page.locator("#results .thumbnail-item")
    items.last.scroll_into_view_if_needed()
    items.last.click()
    page.locator("#player video").wait_for()
    page.wait_for_function("() => { const r = document.querySelector('#player').getBoundingClientRect();"
                           " return r.top >= -1 && r.top < window.innerHeight / 2; }")
    page.close()


def test_search_tab_says_what_is_searchable(browser, running_app, tmp_path):
    page = open_page(browser, running_app.url, tmp_path)
    page.wait_for_function("() => document.querySelector('#overview').innerText.includes('Searching')")
    text = page.locator("#overview").inner_text()
    assert "3 videos" in text and "windows" in text
    suggestions = page.locator("#suggestions button, #suggestions tr, #suggestions .gallery-item")
    suggestions.first.wait_for()
    first = suggestions.first.inner_text().strip()
    assert first
    suggestions.first.click()
    page.wait_for_function("() => document.querySelector('#status').innerText.includes('moments in')")
    assert search_box(page).input_value() == first
    assert first in page.locator("#status").inner_text()
    assert not page.errors, page.errors
    page.close()


def test_example_shows_a_preview_and_says_it_replaces_the_words(browser, running_app, tmp_path):
    from tests.index.media import textured_frames
    from tests.videos import write_video

    clip = write_video(tmp_path / "my clip.mp4", textured_frames(8, seed=3), fps=10)
    page = open_page(browser, running_app.url, tmp_path)
    open_options(page)
    page.locator("#example input[type=file]").set_input_files(str(clip))
    page.wait_for_function("() => document.querySelector('#example-note').innerText.includes('not used')")
    assert "my clip.mp4" in page.locator("#example-note").inner_text()
    page.locator("#example-video video").wait_for()
    run_search(page, "words that are ignored")
    assert "your example" in page.locator("#status").inner_text()
    page.close()


def test_an_example_clip_from_a_dvd_plays_in_the_page(browser, running_app, tmp_path):
    """Browsers play no MPEG-2 program stream (nor .MTS, .avi, .wmv): the example's player was empty. The page
    plays it cut to H.264, as it plays a moment's preview."""
    from tests.index.media import textured_frames
    from tests.videos import write_video

    clip = write_video(tmp_path / "VTS_01_1.mpg", textured_frames(20, seed=3), fps=10, codec="mpeg2video")
    page = open_page(browser, running_app.url, tmp_path)
    open_options(page)
    page.locator("#example input[type=file]").set_input_files(str(clip))
    page.wait_for_function("() => { const v = document.querySelector('#example-video video');"
                           " return v && v.readyState >= 1 && v.videoWidth > 0 && v.duration > 1.5; }", timeout=30000)
    run_search(page, "words that are ignored")
    assert "your example" in page.locator("#status").inner_text()
    assert not page.errors, page.errors
    page.close()


@pytest.mark.parametrize("name", ["reaction.gif", "sticker.webp"])
def test_an_animated_gif_example_plays_as_the_clip_the_search_reads(browser, running_app, tmp_path, name):
    """An animated GIF or WebP (a chat's sticker) is searched by as a clip, so the page shows it in the example's
    player (as H.264, 3 s), not as a picture; the search reads the same frames."""
    from tests.videos import indexed_frames, write_animated_webp, write_gif

    write = write_gif if name.endswith(".gif") else write_animated_webp
    animation = write(tmp_path / name, indexed_frames(30, 96, 128))
    page = open_page(browser, running_app.url, tmp_path)
    open_options(page)
    page.locator("#example input[type=file]").set_input_files(str(animation))
    page.wait_for_function("() => { const v = document.querySelector('#example-video video');"
                           " return v && v.readyState >= 1 && v.videoWidth > 0 && v.duration > 2.5; }", timeout=30000)
    assert not page.locator("#example-image img").is_visible()
    run_search(page, "words that are ignored")
    assert "your example" in page.locator("#status").inner_text()
    assert not page.errors, page.errors
    page.close()


@pytest.mark.parametrize("name", ["00012.MTS", "IMG_0001.MOV", "recording.ts", "VTS_01_1.VOB", "phone.3gp"])
def test_every_video_file_the_index_reads_is_taken_as_an_example(browser, running_app, tmp_path, name):
    """The upload took "video" by the type the browser gives a file, and browsers give none to a camcorder's .MTS or
    a TV's .ts: "Invalid file type", as for an iPhone's .MOV, a DVD's .VOB or a phone's .3gp (driven by Playwright).
    The upload takes them by their extension now."""
    from tests.videos import indexed_frames, write_video

    clip = tmp_path / name
    clip.write_bytes(write_video(tmp_path / "clip.mp4", indexed_frames(10)).read_bytes())  # FFmpeg reads any name
    page = open_page(browser, running_app.url, tmp_path)
    open_options(page)
    page.locator("#example input[type=file]").set_input_files(str(clip))
    page.wait_for_function("() => document.querySelector('#example-note').innerText.includes('not used')")
    assert not [t for t in page.locator(".toast-body").all_inner_texts() if "Invalid" in t]
    page.close()


def test_an_iphone_heic_example_is_shown_as_the_model_sees_it(browser, running_app, tmp_path):
    """A browser shows no HEIC: the page shows the photo decoded, whole and upright, as the search reads it. Before,
    `.heic` went to a video player that showed nothing, and the search read one tile of it."""
    from tests.data.test_image import heic_picture
    from tests.videos import write_heif

    photo = write_heif(tmp_path / "IMG_0042.HEIC", heic_picture(), tile=64, quarter_turns=1)  # shown 120 x 200
    page = open_page(browser, running_app.url, tmp_path)
    open_options(page)
    page.locator("#example input[type=file]").set_input_files(str(photo))
    page.wait_for_function("() => { const i = document.querySelector('#example-image img');"
                           " return i && i.complete && i.naturalWidth > 0; }")
    size = page.evaluate("() => { const i = document.querySelector('#example-image img');"
                         " return [i.naturalWidth, i.naturalHeight]; }")
    assert size == [120, 200]  # whole (not one 64-pixel tile) and turned upright
    assert not page.locator("#example-video video").is_visible()
    run_search(page, "words that are ignored")
    assert "your example" in page.locator("#status").inner_text()
    assert not page.errors, page.errors
    page.close()


def marked(page) -> list[str]:
    """Captions of the gallery items marked as selected."""
    return page.evaluate("() => Array.from(document.querySelectorAll('#results .thumbnail-item.selected'))"
                         ".map(e => e.innerText)")


def test_the_gallery_marks_the_moment_in_the_player_and_a_new_search_empties_both(browser, running_app, tmp_path):
    """The gallery's mark stayed at its position: on another moment once the order changed, and on the new results'
    item there after a new search, whose player kept the old moment's label and In/Out span."""
    page = open_page(browser, running_app.url, tmp_path)
    run_search(page, "a walk in the park")
    best_first = captions(page)
    pick = next(i for i in range(1, len(best_first))
                if best_first[i].split("·")[0] != best_first[0].split("·")[0])  # moves when grouped by video
    page.locator("#results .thumbnail-item").nth(pick).click()
    page.wait_for_function("() => / from \\d+:\\d\\d/.test(document.querySelector('#player').innerText)")
    assert marked(page) == [best_first[pick]]

    page.locator("#order").get_by_text("Grouped by video").click()
    page.wait_for_function("(before) => Array.from(document.querySelectorAll('#results .thumbnail-item'))"
                           ".map(e => e.innerText).join('|') !== before", arg="|".join(best_first))
    grouped = captions(page)
    assert grouped.index(best_first[pick]) != pick  # the test moves the moment
    page.wait_for_function("(want) => Array.from(document.querySelectorAll('#results .thumbnail-item.selected'))"
                           ".map(e => e.innerText).join('|') === want", arg=best_first[pick])
    span = page.locator("#export-in input, #export-in textarea").first
    assert span.input_value() != ""

    search_box(page).fill("a quiet street at night")
    search_box(page).press("Enter")
    page.wait_for_function("() => document.querySelector('#status').innerText.includes('a quiet street at night')")
    page.wait_for_function("() => !document.querySelector('#player video')"
                           " && document.querySelector('#player').innerText.includes('Preview')")
    page.wait_for_function("() => !document.querySelector('#results .thumbnail-item.selected')")
    assert " from " not in page.locator("#player").inner_text()
    assert span.input_value() == ""
    assert page.locator("#export-out input, #export-out textarea").first.input_value() == ""
    page.locator("#export").click()
    page.get_by_text("Select a moment first.").first.wait_for()  # not an export of the old moment
    page.screenshot(path=str(tmp_path / "new_search.png"), full_page=True)
    assert not page.errors, page.errors
    page.close()


def test_a_watching_app_shows_a_video_that_arrives_without_a_reload(browser, app_model, tmp_path, monkeypatch):
    """``vtr app --watch``: a video copied into an indexed folder is counted on the open page, and found by the
    next search, with no reload; the Index tab says the app watches."""
    import app.ui
    from app.server import launch_app
    from index import build_index
    from tests.app.conftest import free_port, make_collection
    from tests.index.media import make_video

    videos = make_collection(tmp_path / "videos")
    idx = tmp_path / "idx"
    build_index([str(videos)], str(idx), model=app_model, workers=0, progress=False)
    monkeypatch.setattr(app.ui, "WATCH_TICK_MIN_S", 0.5)  # the page asks for the counts twice a second
    running = launch_app(str(idx), port=free_port(), model=app_model, quiet=True, build_options={"workers": 0},
                         watch=0.2)
    try:
        page = open_page(browser, running.url, tmp_path)
        page.wait_for_function("() => document.querySelector('#overview').innerText.includes('3 videos')")
        make_video(tmp_path / "incoming.mp4", 8, seed=9)
        (tmp_path / "incoming.mp4").rename(videos / "trips" / "lake.mp4")
        page.wait_for_function("() => document.querySelector('#overview').innerText.includes('4 videos')",
                               timeout=60_000)
        search_box(page).fill("a walk by the lake")
        search_box(page).press("Enter")
        page.wait_for_function("() => document.querySelector('#status').innerText.includes('in 4 videos')")
        assert "lake.mp4" in page.locator("#results").inner_text()
        page.get_by_role("tab", name="Index").click()
        page.wait_for_function("() => document.querySelector('#index-status').innerText.includes('4 videos')")
        assert "Watching its folders: an update 0.2 s after each" in page.locator("#index-status").inner_text()
        assert not page.errors, page.errors
        page.close()
    finally:
        running.close()


def test_a_search_shows_the_counts_of_the_index_it_searched(browser, app_model, tmp_path):
    """A page left open while another tab's build, a cron `vtr index update` or a terminal adds videos: its next
    search finds them and the page's counts say so (the Search tab's and the Index tab's). Before, they stayed as
    the page had loaded them ("Searching 3 videos" over results from 4) until a reload."""
    from app.server import launch_app
    from index import build_index
    from tests.app.conftest import free_port, make_collection
    from tests.index.media import make_video

    videos = make_collection(tmp_path / "videos")
    idx = tmp_path / "idx"
    build_index([str(videos)], str(idx), model=app_model, workers=0, progress=False)
    running = launch_app(str(idx), port=free_port(), model=app_model, quiet=True, build_options={"workers": 0})
    try:
        page = open_page(browser, running.url, tmp_path)
        page.wait_for_function("() => document.querySelector('#overview').innerText.includes('3 videos')")
        make_video(videos / "trips" / "lake.mp4", 8, seed=9)
        build_index(None, str(idx), model=app_model, workers=0, progress=False)  # another process's update
        run_search(page, "a walk by the lake")
        assert "in 4 videos" in page.locator("#status").inner_text()
        page.wait_for_function("() => document.querySelector('#overview').innerText.includes('4 videos')")
        page.get_by_role("tab", name="Index").click()
        assert "4 videos" in page.locator("#index-status").inner_text()
        assert not page.errors, page.errors
        page.close()
    finally:
        running.close()


def test_every_moment_of_a_search_downloads_as_one_zip(browser, running_app, tmp_path):
    import zipfile

    page = open_page(browser, running_app.url, tmp_path)
    assert not page.locator("#export-all").is_visible()  # nothing found yet, nothing to export
    run_search(page, "a walk in the park")
    shown = captions(page)
    page.locator("#export-all").click()
    link = page.locator("#export-all-file a").first
    link.wait_for()
    assert page.locator("#export-all-note").inner_text().strip() == f"Ready: {len(shown)} moments.zip"
    with page.expect_download() as info:
        link.click()
    saved = tmp_path / "moments.zip"
    info.value.save_as(saved)
    with zipfile.ZipFile(saved) as z:
        names = z.namelist()
    # one mp4 per moment shown, named after its video and span, as the gallery captions them
    assert len(names) == len(shown)
    for caption, name in zip(shown, names):
        video = caption.split("·")[0].strip().rsplit(".", 1)[0]
        assert name.startswith(video + " ") and name.endswith(".mp4")
    # a new search takes the last one's zip away
    run_search(page, "a day at the beach")
    page.wait_for_function("() => !document.querySelector('#export-all-file a')")
    assert page.locator("#export-all").is_visible()
    assert not page.errors, page.errors
    page.close()

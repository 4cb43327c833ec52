"""The app in a real browser (Debian's chromium via Playwright): search, results, the player; the Index tab."""

from urllib.parse import urlparse

import pytest

from tests.app.conftest import free_port, make_collection

TIMEOUT_MS = 60_000


def open_page(browser, url, tmp_path, init_script: str | None = None):
    """A page that may only talk to the app: anything not on localhost is refused and recorded. ``init_script``: run
    in the page before its own scripts."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    if init_script:
        page.add_init_script(init_script)
    page.set_default_timeout(TIMEOUT_MS)
    page.outside = []

    def guard(route):
        host = urlparse(route.request.url).hostname
        if route.request.url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            page.outside.append(route.request.url)
            route.abort()

    page.route("**/*", guard)
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(url)
    page.wait_for_selector("#query textarea, #query input")
    return page


def open_options(page) -> None:
    """Unfold "Search by example, filters" and wait for what it holds. Gradio makes a closed accordion's contents only
    when it first opens, so nothing inside exists before. Once in CI (f670ce4) its contents had not appeared 60 s
    after the click, and the cause was not found (40 tries under load, and 40 with the load events delayed, all opened
    it). A click that left it closed is tried once more; an accordion that opened and stays empty fails, saying what
    the page showed."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    label = page.locator("#options .label-wrap")
    inside = page.locator("#example input[type=file]")
    seen = []
    for _ in range(2):
        if "open" not in (label.get_attribute("class") or "").split():
            label.click()
        try:
            inside.wait_for(state="attached", timeout=15_000)
            return
        except PlaywrightTimeout as e:
            seen.append(f"label class {label.get_attribute('class')!r}: {str(e).splitlines()[0]}")
    raise AssertionError(f"'Search by example, filters' never showed its contents ({'; '.join(seen)}); "
                         f"page errors: {page.errors}")


def test_search_select_play(browser, running_app, tmp_path):
    page = open_page(browser, running_app.url, tmp_path)
    box = page.locator("#query textarea, #query input").first
    box.fill("a walk in the park")
    box.press("Enter")
    items = page.locator("#results .thumbnail-item")
    items.first.wait_for()
    assert items.count() >= 3
    assert "moments in" in page.locator("#status").inner_text()
    captions = page.locator("#results").inner_text()
    assert ".mp4" in captions and "–" in captions  # name · start–end · score

    items.nth(1).click()
    video = page.locator("#player video")
    video.wait_for()
    # the preview is H.264: the browser decodes it and knows its length
    page.wait_for_function("() => { const v = document.querySelector('#player video');"
                           " return v && v.readyState >= 1 && v.duration > 0 && v.videoWidth > 0; }")
    assert "score" in page.locator("#details").inner_text()
    shot = tmp_path / "search.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
    assert not page.errors, page.errors
    assert not page.outside, f"the page tried to reach beyond localhost: {page.outside}"
    page.close()


def test_moments_like_the_one_in_the_player(browser, running_app, tmp_path):
    """Select a moment, ask for moments like it: new results without it, the player emptied, "More results" and a new
    search by words each follow what they should."""
    import re

    page = open_page(browser, running_app.url, tmp_path)
    page.locator("#like").click()  # nothing selected yet: says so, changes nothing
    page.get_by_text("Select a moment first.").wait_for()
    box = page.locator("#query textarea, #query input").first
    box.fill("a walk in the park")
    box.press("Enter")
    items = page.locator("#results .thumbnail-item")
    items.first.wait_for()
    items.first.click()
    page.locator("#player video").wait_for()
    name, span = re.search(r"(\S+\.mp4) · (\S+–\S+)", page.locator("#details").inner_text()).groups()
    start, end = (sum(float(p) * 60 ** i for i, p in enumerate(reversed(t.split(":")))) for t in span.split("–"))

    page.locator("#like").click()
    status = page.locator("#status")
    page.wait_for_function("() => document.querySelector('#status').innerText.includes(' like ')")
    assert f"like {name} {span}" in status.inner_text(), status.inner_text()
    # new results: nothing of them is in the player yet (it empties right after the results come)
    page.wait_for_function("() => !document.querySelector('#player video')")
    captions = [items.nth(i).inner_text() for i in range(items.count())]
    assert captions
    for caption in captions:  # the moment itself is not among them
        found = re.search(r"(\S+\.mp4) · (\S+)–(\S+)", caption)
        if found and found.group(1) == name:
            s, e = (sum(float(p) * 60 ** i for i, p in enumerate(reversed(t.split(":")))) for t in found.groups()[1:])
            assert e <= start or s >= end, (caption, span)
    shot = tmp_path / "like.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")

    box.fill("a walk in the park")  # words again: "like" no longer holds
    box.press("Enter")
    page.wait_for_function("() => document.querySelector('#status').innerText.includes('for “a walk')")
    assert " like " not in status.inner_text()
    assert not page.errors, page.errors
    assert not page.outside, page.outside
    page.close()


def test_recording_dates_filter_and_show(browser, running_app, tmp_path):
    """The date boxes under "Search by example, filters": a bad date says which box; a year with no video finds
    none; an open range finds them; the player's details say when a video was recorded (here: its file's date)."""
    page = open_page(browser, running_app.url, tmp_path)
    page.locator("#options").click()
    since = page.locator("#since textarea, #since input").first
    since.fill("soon")
    box = page.locator("#query textarea, #query input").first
    box.fill("a walk in the park")
    box.press("Enter")
    status = page.locator("#status")
    page.wait_for_function("() => document.querySelector('#status').innerText.includes('Recorded from')")
    assert "'soon' is not a date" in status.inner_text()
    since.fill("1990")
    page.locator("#until textarea, #until input").first.fill("1990-12")
    box.press("Enter")
    page.get_by_text("No moments match").wait_for()
    since.fill("1990")
    page.locator("#until textarea, #until input").first.fill("")
    box.press("Enter")
    items = page.locator("#results .thumbnail-item")
    items.first.wait_for()
    items.first.click()
    page.locator("#player video").wait_for()
    page.wait_for_function("() => document.querySelector('#details').innerText.includes('File date ')")
    assert not page.errors, page.errors
    page.close()


def test_empty_state_then_index_tab_builds(browser, app_model, tmp_path):
    from app.server import launch_app

    videos = make_collection(tmp_path / "my videos")
    app = launch_app(str(tmp_path / "new.idx"), port=free_port(), model=app_model, quiet=True,
                     build_options={"workers": 0})
    try:
        page = open_page(browser, app.url, tmp_path)
        page.get_by_text("No index yet").first.wait_for()
        box = page.locator("#query textarea, #query input").first
        box.fill("anything")
        box.press("Enter")
        page.wait_for_function("() => document.querySelector('#status').innerText.includes('No index yet')")

        page.get_by_role("tab", name="Index").click()
        folder = page.locator("#new-folder textarea, #new-folder input").first
        folder.fill(str(tmp_path / "does not exist"))
        page.locator("#add").click()
        page.wait_for_function("() => document.querySelector('#build-summary').innerText.includes('not a folder')")

        folder.fill(str(videos))
        page.locator("#add").click()
        page.wait_for_function("() => document.querySelector('#build-summary').innerText.includes('Done in')")
        summary = page.locator("#build-summary").inner_text()
        assert "holds 3 videos" in summary
        assert "1 failed" in summary and "broken.mp4" in summary
        assert "3 videos indexed" in page.locator("#index-status").inner_text()
        assert "broken.mp4" in page.locator("#failures").inner_text()
        page.screenshot(path=str(tmp_path / "index.png"), full_page=True)

        page.get_by_role("tab", name="Search").click()
        assert not page.locator("#no-index").is_visible()
        box.fill("a walk in the park")
        box.press("Enter")
        page.locator("#results .thumbnail-item").first.wait_for()
        assert not page.errors, page.errors
        page.close()
    finally:
        app.close()


def test_index_tab_takes_a_folder_out_after_asking(browser, app_model, tmp_path):
    from app.server import launch_app
    from index import build_index

    videos = make_collection(tmp_path / "my videos")
    idx = tmp_path / "videos.idx"
    build_index([str(videos)], str(idx), model=app_model, workers=0, progress=False, window_policy="stride")
    app = launch_app(str(idx), port=free_port(), model=app_model, quiet=True, build_options={"workers": 0})
    try:
        page = open_page(browser, app.url, tmp_path)
        answers, asked = [], []

        def answer(dialog):
            asked.append(dialog.message)
            dialog.accept() if answers.pop(0) else dialog.dismiss()

        page.on("dialog", answer)
        trips = str(videos / "trips")
        # the Search tab's folder filter names the folder; an update keeps it (it went back to all folders)
        open_options(page)
        page.locator("#folder input").click()
        page.locator("ul[role=listbox] li", has_text=trips).first.click()
        page.get_by_role("tab", name="Index").click()
        page.locator("#update").click()
        page.wait_for_function("() => document.querySelector('#build-summary').innerText.includes('Done in')")
        page.get_by_role("tab", name="Search").click()
        assert page.locator("#folder input").input_value() == trips
        page.get_by_role("tab", name="Index").click()
        page.locator("#remove").click()  # nothing chosen: no question, a hint
        page.wait_for_function("() => document.querySelector('#build-summary').innerText.includes('Choose a folder')")
        assert asked == []

        page.locator("#remove-folder input").click()
        page.locator("ul[role=listbox] li", has_text=trips).first.click()
        answers.append(False)  # cancelled: nothing changes
        page.locator("#remove").click()
        page.wait_for_function("() => document.querySelector('#index-status').innerText.includes('3 videos')")
        assert len(asked) == 1 and trips in asked[0] and "stay on disk" in asked[0]
        page.wait_for_timeout(1000)
        assert "3 videos indexed" in page.locator("#index-status").inner_text()

        answers.append(True)
        page.locator("#remove").click()
        page.wait_for_function("() => document.querySelector('#build-summary').innerText.includes('Took')")
        summary = page.locator("#build-summary").inner_text()
        assert "Took 1 video" in summary and "untouched" in summary
        status = page.locator("#index-status").inner_text()
        assert "2 videos indexed" in status and "Left out" in status and trips in status
        assert (videos / "trips" / "park.mp4").is_file()
        page.screenshot(path=str(tmp_path / "removed.png"), full_page=True)

        page.get_by_role("tab", name="Search").click()
        # the filter named the folder taken out: back to all folders, or the search would find nothing
        assert page.locator("#folder input").input_value() == "All folders"
        box = page.locator("#query textarea, #query input").first
        box.fill("a walk in the park")
        box.press("Enter")
        page.locator("#results .thumbnail-item").first.wait_for()
        names = page.evaluate("() => Array.from(document.querySelectorAll('#results .caption-label'))"
                              ".map(e => e.innerText)")
        assert names and not any("park.mp4" in n for n in names), names
        assert not page.errors, page.errors
        page.close()
    finally:
        app.close()

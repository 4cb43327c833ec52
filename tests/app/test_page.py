"""The search page as a person uses it, in Debian's chromium: filters, what typed text becomes, export, the player."""

from tests.app.test_browser import open_page


def search_box(page):
    return page.locator("#query textarea, #query input").first


def test_opening_the_filters_keeps_every_search_working(browser, running_app, tmp_path):
    page = open_page(browser, running_app.url, tmp_path)
    page.locator("#options").get_by_text("Search by example, filters").click()
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

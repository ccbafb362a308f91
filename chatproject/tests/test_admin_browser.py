"""The admin in a real browser: Debian's headless Chromium, driven by Selenium through
Debian's chromium-driver, against gunicorn from the Procfile with DEBUG off.

A staff member logs in, opens the conversation list, opens a conversation made by
two chat turns and reads its transcript: each tool call with its arguments, each
result pretty-printed (one opened by a click). The transcript is saved as
test-artifacts/admin_transcript.png and the whole page, 1280 px wide, as
test-artifacts/admin_conversation_page.png. The message list filtered with the owner
box (admin_messages.png) and a user's page with its counts (admin_user.png) are
checked and saved too; a failing run saves admin_failure.png.
"""

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from testing.servers import ROOT, HttpClient, manage

pytestmark = pytest.mark.e2e

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # Chromium refuses to run as root with its sandbox
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
]
STAFF_PASSWORD = "Staff-Browser-Passw0rd-3390"


@pytest.fixture(scope="module")
def browser():
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            pytest.fail(f"{path} is missing: run bin/setup-system (chromium, chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def save_element_screenshot(browser, selector, path):
    """A PNG of the whole element at the window's width, also the part below the fold."""
    import base64

    box = browser.execute_script(
        "scrollTo(0, 0); const e = document.querySelector(arguments[0]);"
        "const r = e.getBoundingClientRect();"
        "return e === document.documentElement"
        " ? {x: 0, y: 0, width: e.scrollWidth, height: e.scrollHeight}"
        " : {x: r.left, y: r.top, width: r.width, height: r.height};",
        selector,
    )
    shot = browser.execute_cdp_cmd(
        "Page.captureScreenshot",
        {"format": "png", "captureBeyondViewport": True, "clip": {**box, "scale": 1}},
    )
    path.write_bytes(base64.b64decode(shot["data"]))


@pytest.fixture(scope="module")
def conversation(e2e_direct_site):
    """A staff account, and a user's conversation of two chat turns made over the API
    (POST chat/ with the rules agent): each turn calls a tool and stores its result."""
    env = {**e2e_direct_site.env, "DJANGO_SUPERUSER_PASSWORD": STAFF_PASSWORD}
    manage(env, "createsuperuser", "--noinput", "--username", "staff", "--email", "s@example.com")

    bob = HttpClient(e2e_direct_site.url)
    bob.login(f"bob-{uuid.uuid4().hex[:6]}", "Amber-Fjord-4419-Quill")
    assert bob.post("/api/v1/chat/", {"message": "add walk the dog"}).status == 200

    alice = f"alice-{uuid.uuid4().hex[:6]}"
    client = HttpClient(e2e_direct_site.url)
    client.login(alice, "Alice-Passw0rd-1187")
    first = client.post("/api/v1/chat/", {"message": "add buy milk"})
    assert first.status == 200, first
    conversation_id = first.json()["conversation_id"]
    second = client.post(
        "/api/v1/chat/", {"message": "show my tasks", "conversation_id": conversation_id}
    )
    assert second.status == 200, second
    return {"title": "add buy milk", "owner": alice, "messages": 8}


def log_in(browser, site, next_url):
    from selenium.webdriver.common.by import By

    browser.get(f"{site.url}/admin/login/?next={next_url}")
    if browser.find_elements(By.ID, "id_username"):
        browser.find_element(By.ID, "id_username").send_keys("staff")
        browser.find_element(By.ID, "id_password").send_keys(STAFF_PASSWORD)
        browser.find_element(By.CSS_SELECTOR, "#login-form [type=submit]").click()
    else:  # already logged in: the login page sends staff to the index
        browser.get(site.url + next_url)


def test_staff_reads_a_transcript_with_tool_calls(e2e_direct_site, browser, conversation):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    title = conversation["title"]
    wait = WebDriverWait(browser, 15)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        log_in(browser, e2e_direct_site, "/admin/chat/conversation/")

        wait.until(ec.presence_of_element_located((By.ID, "changelist")))
        assert browser.current_url.endswith("/admin/chat/conversation/")
        # The admin's stylesheet came from whitenoise: the header has its colour.
        header_colour = browser.execute_script(
            "return getComputedStyle(document.getElementById('header')).backgroundColor"
        )
        assert header_colour not in ("", "rgba(0, 0, 0, 0)", "transparent"), header_colour

        browser.find_element(By.LINK_TEXT, title).click()
        rows = wait.until(
            ec.presence_of_all_elements_located((By.CSS_SELECTOR, "table.transcript tr.message"))
        )
        roles = [row.find_element(By.CSS_SELECTOR, "td.role").text.lower() for row in rows]
        assert roles == ["user", "assistant", "tool", "assistant"] * 2
        calls = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "code.call")]
        assert calls == ['add_task(title="buy milk")', 'list_tasks(status="all")']

        # Results are collapsible: a short one starts open, a longer one opens on a click.
        from chat.admin import RESULT_OPEN_LINES

        results = browser.find_elements(By.CSS_SELECTOR, "details.result")
        started_open = [r.get_attribute("open") is not None for r in results]
        for result in results:
            if result.get_attribute("open") is None:
                result.find_element(By.TAG_NAME, "summary").click()
        for result in results:
            wait.until(lambda _, r=result: r.find_element(By.TAG_NAME, "pre").is_displayed())
        added, listed = (r.find_element(By.TAG_NAME, "pre").text for r in results)
        assert started_open == [
            len(text.splitlines()) <= RESULT_OPEN_LINES for text in (added, listed)
        ]
        assert '"title": "buy milk"' in added and '\n  "task": {' in added
        assert '"tasks": [' in listed and '"title": "buy milk"' in listed

        # Readable at 1280 px: nothing runs off the right edge, each row links its message.
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"the page is {overflow}px wider than the window"
        clipped = browser.execute_script(
            "return [...document.querySelectorAll('table.transcript td, #transcript')]"
            ".filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent.trim())"
        )
        assert clipped == [], f"text runs out of its cell: {clipped}"
        link = rows[0].find_element(By.CSS_SELECTOR, "td.seq a").get_attribute("href")
        assert "/admin/chat/message/" in link
        stamp = rows[0].find_element(By.CSS_SELECTOR, "td.at").text
        assert "T" not in stamp and "+00:00" not in stamp, stamp

        save_element_screenshot(browser, "#transcript", ARTIFACTS / "admin_transcript.png")
        save_element_screenshot(browser, "html", ARTIFACTS / "admin_conversation_page.png")
    except BaseException:
        browser.save_screenshot(str(ARTIFACTS / "admin_failure.png"))
        raise
    assert Path(ARTIFACTS / "admin_transcript.png").stat().st_size > 10_000


def test_staff_filter_messages_by_owner_with_autocomplete(e2e_direct_site, browser, conversation):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 15)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        log_in(browser, e2e_direct_site, "/admin/chat/message/")
        wait.until(ec.presence_of_element_located((By.ID, "changelist")))
        everyone = browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")

        # The owner filter is a select2 box fed by the admin's autocomplete view.
        browser.find_element(
            By.CSS_SELECTOR, "#filter_owner__id__exact + .select2 .select2-selection"
        ).click()
        search = wait.until(
            ec.visibility_of_element_located((By.CSS_SELECTOR, ".select2-search__field"))
        )
        search.send_keys(conversation["owner"])
        option = wait.until(
            ec.element_to_be_clickable(
                (
                    By.XPATH,
                    f"//li[contains(@class, 'select2-results__option')]"
                    f"[normalize-space()='{conversation['owner']}']",
                )
            )
        )
        option.click()
        wait.until(ec.url_contains("owner__id__exact="))

        owners = [
            cell.text
            for cell in browser.find_elements(By.CSS_SELECTOR, "#result_list td.field-owner")
        ]
        assert len(everyone) > len(owners) == conversation["messages"]
        assert set(owners) == {conversation["owner"]}
        chosen = browser.find_element(
            By.CSS_SELECTOR, "#filter_owner__id__exact + .select2 .select2-selection__rendered"
        ).text
        assert conversation["owner"] in chosen
        overflow = browser.execute_script(
            "const e = document.querySelector('#changelist .results');"
            "return e.scrollWidth - e.clientWidth"
        )
        assert overflow <= 0, f"the message list is {overflow}px wider than its box"
        save_element_screenshot(browser, "html", ARTIFACTS / "admin_messages.png")
    except BaseException:
        browser.save_screenshot(str(ARTIFACTS / "admin_failure.png"))
        raise


def test_staff_follow_a_users_counts_to_their_messages(e2e_direct_site, browser, conversation):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 15)
    owner = conversation["owner"]
    try:
        log_in(browser, e2e_direct_site, f"/admin/auth/user/?q={owner}")
        wait.until(ec.element_to_be_clickable((By.LINK_TEXT, owner))).click()
        owned = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "ul.owned-data")))
        assert owned.text.split("\n") == ["1 task", "1 conversation", "8 messages"]
        save_element_screenshot(browser, "html", ARTIFACTS / "admin_user.png")

        owned.find_element(By.LINK_TEXT, "8 messages").click()
        wait.until(ec.url_contains("/admin/chat/message/?owner__id__exact="))
        owners = browser.find_elements(By.CSS_SELECTOR, "#result_list td.field-owner")
        assert [cell.text for cell in owners] == [owner] * 8
    except BaseException:
        browser.save_screenshot(str(ARTIFACTS / "admin_failure.png"))
        raise

"""The admin in a real browser: Debian's headless Chromium, driven by Selenium through
Debian's chromium-driver, against gunicorn from the Procfile with DEBUG off.

A staff member logs in, opens the conversation list, opens a conversation and
reads its messages in order. The final page is saved as
test-artifacts/admin_conversation.png (a failing run saves admin_failure.png).
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


@pytest.fixture(scope="module")
def conversation(e2e_direct_site):
    """A staff account, and a user's conversation of three messages made over the API."""
    env = {**e2e_direct_site.env, "DJANGO_SUPERUSER_PASSWORD": STAFF_PASSWORD}
    manage(env, "createsuperuser", "--noinput", "--username", "staff", "--email", "s@example.com")

    client = HttpClient(e2e_direct_site.url)
    client.login(f"alice-{uuid.uuid4().hex[:6]}", "Alice-Passw0rd-1187")
    title = f"Browser check {uuid.uuid4().hex[:6]}"
    created = client.post("/api/v1/conversations/", {"title": title})
    assert created.status == 201, created
    url = f"/api/v1/conversations/{created.json()['id']}/messages/"
    messages = [
        ("user", "First: add buy milk to my list"),
        ("assistant", "Second: added “buy milk”."),
        ("user", "Third: thanks!"),
    ]
    for role, content in messages:
        answer = client.post(url, {"role": role, "content": content})
        assert answer.status == 201, answer
    return title, messages


def test_staff_reads_a_conversation_in_order(e2e_direct_site, browser, conversation, request):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    title, messages = conversation
    wait = WebDriverWait(browser, 15)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        browser.get(e2e_direct_site.url + "/admin/login/?next=/admin/chat/conversation/")
        browser.find_element(By.ID, "id_username").send_keys("staff")
        browser.find_element(By.ID, "id_password").send_keys(STAFF_PASSWORD)
        browser.find_element(By.CSS_SELECTOR, "#login-form [type=submit]").click()

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
        seen = [
            tuple(cell.text for cell in row.find_elements(By.TAG_NAME, "td")[:3]) for row in rows
        ]
        assert seen == [
            (str(seq), role, content) for seq, (role, content) in enumerate(messages, start=1)
        ]
        assert title in browser.find_element(By.ID, "content").text
        browser.save_screenshot(str(ARTIFACTS / "admin_conversation.png"))
    except BaseException:
        browser.save_screenshot(str(ARTIFACTS / "admin_failure.png"))
        raise
    assert Path(ARTIFACTS / "admin_conversation.png").stat().st_size > 10_000

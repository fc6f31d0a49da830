"""The web console in a real browser: Debian's headless Chromium driven through its WebDriver
(Selenium with ``chromedriver``), against a real daemon with ``[web] http`` on loopback.

A new user's path: open the login link ``asynctask web-token`` printed, see the overview,
open a failed task and read its traceback, cancel a delayed task with the button (and its
confirmation), and the CLI sees it cancelled. The overview's live region takes updates from
the event stream. Screenshots are saved under ``tests/artifacts/`` (git-ignored; the path is
printed). ``scripts/install-chromium`` installs the browser; where it cannot (not root, no
apt-get, no network), these tests skip, saying why."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import DaemonProcess, poll
from tests.web.conftest import cli_state, web_token

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Any]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip(
            "no chromium and chromedriver on PATH (scripts/install-chromium installs Debian's "
            "chromium and chromium-driver; it needs root and apt-get)"
        )
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    options.add_argument("--headless=new")
    # Chromium refuses to start as root with its sandbox on (the tests run as root in CI and
    # here); the pages it loads are the console's own, on loopback.
    options.add_argument("--no-sandbox")
    options.add_argument("--disable-dev-shm-usage")  # a container's small /dev/shm
    options.add_argument("--window-size=1280,900")
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium'}")
    options.add_argument("--no-first-run")
    options.add_argument("--disable-background-networking")
    options.add_argument("--disable-component-update")
    # The driver path is given, so Selenium Manager never looks for (or downloads) one.
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _screenshot(driver: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    assert driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


def _text(driver: Any, selector: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.CSS_SELECTOR, selector).text)


def test_a_new_user_logs_in_reads_a_traceback_and_cancels_a_task(
    web_daemon: DaemonProcess, chromium: Any
) -> None:
    from selenium.webdriver.common.by import By

    client = web_daemon.client()
    for n in range(12):
        client.submit("tests.e2e.tasks:add", n, n)
    failed = client.submit("tests.e2e.tasks:boom", "the <b>downstream</b> said no", retries=0)
    assert client.wait(failed.id, timeout=30).state == "failed"
    delayed = client.submit("tests.e2e.tasks:add", 1, 2, delay=600)

    token = web_token(web_daemon)
    assert token["login_url"].startswith("http://127.0.0.1:")
    chromium.get(token["login_url"])
    poll(lambda: chromium.find_elements(By.CSS_SELECTOR, "h1"))
    poll(lambda: _text(chromium, "h1") == "Overview")
    assert "#" not in chromium.current_url  # the token left the address bar
    assert "Pool" in chromium.page_source
    assert chromium.find_elements(By.CSS_SELECTOR, "svg.chart")

    # Live: the overview's region is replaced by the event stream's updates.
    poll(lambda: int(chromium.find_element(By.TAG_NAME, "body").get_attribute("data-updates")
                     or 0) >= 1)  # fmt: skip
    _screenshot(chromium, "console-overview")

    # The failure is found from the Failures page, and its traceback is on its page, inert.
    _click(chromium, By.LINK_TEXT, "Failures")
    poll(lambda: _text(chromium, "h1") == "Failures")
    _click(chromium, By.LINK_TEXT, failed.id)
    poll(lambda: _text(chromium, "h1") == f"Task {failed.id}")
    traceback = _text(chromium, "pre.traceback")
    assert "Traceback" in traceback
    assert "ValueError: the <b>downstream</b> said no" in traceback  # shown as text
    assert not chromium.find_elements(By.CSS_SELECTOR, "pre.traceback b")
    _screenshot(chromium, "console-failed-task")

    # Cancel the delayed task with its button; the page asks first.
    chromium.get(f"{token['url']}/task?tenant=default&id={delayed.id}")
    poll(lambda: _text(chromium, "h1") == f"Task {delayed.id}")
    assert cli_state(web_daemon, delayed.id) == "scheduled"
    _click(chromium, By.CSS_SELECTOR, 'form[action="/task/cancel"] button')
    alert = poll(lambda: _alert(chromium))
    assert alert.text == "Cancel this task?"
    alert.accept()
    poll(lambda: "Cancelled." in chromium.page_source)
    assert cli_state(web_daemon, delayed.id) == "cancelled"
    assert "cancelled" in _text(chromium, "table.fields")


def _click(driver: Any, by: str, value: str) -> None:
    """Click the element once it holds still: a live update (server-sent events) may replace
    the page's content between finding the element and clicking it (a stale element)."""
    from selenium.common.exceptions import StaleElementReferenceException

    def attempt() -> bool | None:
        try:
            driver.find_element(by, value).click()
        except StaleElementReferenceException:
            return None
        return True

    poll(attempt)


def _alert(driver: Any) -> Any:
    from selenium.common.exceptions import NoAlertPresentException

    try:
        return driver.switch_to.alert
    except NoAlertPresentException:
        time.sleep(0.05)
        return None


def test_a_dismissed_confirmation_changes_nothing(web_daemon: DaemonProcess, chromium: Any) -> None:
    from selenium.webdriver.common.by import By

    delayed = web_daemon.client().submit("tests.e2e.tasks:add", 1, 2, delay=600)
    token = web_token(web_daemon)
    chromium.get(token["login_url"])
    poll(lambda: chromium.find_elements(By.CSS_SELECTOR, "h1") and _text(chromium, "h1"))
    chromium.get(f"{token['url']}/task?tenant=default&id={delayed.id}")
    poll(lambda: _text(chromium, "h1") == f"Task {delayed.id}")
    _click(chromium, By.CSS_SELECTOR, 'form[action="/task/cancel"] button')
    poll(lambda: _alert(chromium)).dismiss()
    time.sleep(0.5)  # a cancel that was sent anyway would have landed by now
    assert cli_state(web_daemon, delayed.id) == "scheduled"

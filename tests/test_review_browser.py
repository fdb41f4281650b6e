"""The review page in a real browser (headless Chromium through selenium): every event's snapshot and H.264 clip
load and play, and a label clicked on the page lands in feedback.jsonl and is shown.

``review_in_browser(run)`` is the whole check over any run folder, so a test of a run made by the real ``watch``
can call it too."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
from conftest import extra_module, service_missing
from test_review import write_review_run

from ognet_video.review.app import start_server
from ognet_video.review.feedback import read_labels

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"

MEDIA_STATE = """
const card = document.querySelector(`li.event[data-eid="${arguments[0]}"]`);
if (!card) return {card: false};
card.scrollIntoView();
const img = card.querySelector("img.snapshot"), video = card.querySelector("video.clip");
return {card: true, image: img && !img.hidden ? img.naturalWidth : null,
        duration: video && !video.hidden ? (Number.isFinite(video.duration) ? video.duration : -1) : null, time: video ? video.currentTime : null,
        error: video && video.error ? video.error.code : null, label: card.dataset.label || null,
        text: (card.querySelector(".label") || {}).textContent || null};
"""


def browser() -> Any:
    """Headless Chromium (skipped where it is not installed, failed in CI)."""
    extra_module("selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        service_missing("chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required",
                "--window-size=1280,1600", "--mute-audio"):  # fmt: skip
        opts.add_argument(arg)
    opts.binary_location = CHROMIUM
    return webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))


def review_in_browser(run: Path, host: str = "127.0.0.1", timeout: float = 30.0) -> dict[str, Any]:
    """Serve the review page over ``run`` on ``host`` and open it: every listed event's snapshot must decode
    and its clip report a finite duration and play; "normal" clicked on the first anomaly must be appended to
    its camera folder's feedback.jsonl and shown, also after a reload (beyond localhost the page sends the
    token of its URL). Returns the events as the API listed them and the id of the one labelled."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server = start_server([run], host, 0)
    driver = browser()
    try:
        events = httpx.get(f"http://127.0.0.1:{server.port}/api/events", timeout=10).json()["events"]
        assert events, f"no events under {run}"
        driver.get(server.url.replace(f"//{host}:", "//127.0.0.1:"))
        wait = WebDriverWait(driver, timeout, poll_frequency=0.1)
        for ev in events:

            def loaded(d: Any, eid: str = ev["eid"]) -> Any:
                s = d.execute_script(MEDIA_STATE, eid)
                if not s["card"]:
                    return False
                if s["error"] is not None:
                    return s  # a media error ends the wait: reported below
                image_ok = s["image"] is None or s["image"] > 0
                clip_ok = s["duration"] is None or s["duration"] > 0  # -1: not known (yet), NaN or infinite
                return image_ok and clip_ok and s

            state = wait.until(loaded, f"event {ev['id']}: its card, snapshot or clip did not load")
            assert state["error"] is None, f"event {ev['id']}: the clip did not load (MediaError code {state['error']})"
            assert (state["image"] is None) == (ev["snapshot"] is None) and (state["duration"] is None) == (
                ev["clip"] is None
            )
            buttons = driver.find_elements(By.CSS_SELECTOR, f'li.event[data-eid="{ev["eid"]}"] .feedback button')
            assert len(buttons) == (2 if ev["kind"] == "anomaly" else 0), f"event {ev['id']}: {len(buttons)} buttons"
            if ev["clip"]:  # the browser decodes it, not only reads its length
                driver.execute_script(f"document.querySelector('li.event[data-eid=\"{ev['eid']}\"] video').play()")
                wait.until(lambda d, eid=ev["eid"]: d.execute_script(MEDIA_STATE, eid)["time"] > 0,
                           f"event {ev['id']}: the clip does not play")  # fmt: skip
        target = next(ev for ev in events if ev["kind"] == "anomaly")
        card = driver.find_element(By.CSS_SELECTOR, f'li.event[data-eid="{target["eid"]}"]')
        card.find_element(By.CSS_SELECTOR, 'button[data-label="normal"]').click()
        wait.until(
            lambda d: d.execute_script(MEDIA_STATE, target["eid"])["label"] == "normal", "the label is not shown"
        )
        assert read_labels(Path(target["folder"]))[target["id"]].label == "normal"
        assert "labelled normal" in driver.execute_script(MEDIA_STATE, target["eid"])["text"]
        driver.refresh()  # from the server now, not the click's answer
        wait.until(lambda d: d.execute_script(MEDIA_STATE, target["eid"]).get("label") == "normal",
                   "the label is not shown after a reload")  # fmt: skip
        return {"events": events, "labelled": target["id"]}
    finally:
        driver.quit()
        server.stop()


def test_review_page_in_chromium(tmp_path):
    run = write_review_run(tmp_path / "runs")
    result = review_in_browser(run)
    assert [ev["id"] for ev in result["events"]] == ["lobby-2", "lobby-1", "lobby-1-3"]
    assert result["events"][2]["kind"] == "camera" and result["labelled"] == "lobby-2"
    lines = (run / "feedback.jsonl").read_text().splitlines()
    assert len(lines) == 1 and '"label": "normal"' in lines[0] and '"event": "lobby-2"' in lines[0]


def test_labels_beyond_localhost_send_the_token(tmp_path):
    run = write_review_run(tmp_path / "runs")
    assert review_in_browser(run, host="0.0.0.0")["labelled"] == "lobby-2"

"""Event clips and the review page on real Ped2 events: ``watch`` a few Ped2 test clips with a trained model, check
every event clip with ffprobe (H.264, duration = pre-roll + event + post-roll within one frame interval, cut where
the source starts or ends), open the review page in headless Chromium, check each clip plays, and take the
screenshot docs/deployment.md shows.

    python pipelines/review_ped2.py --model runs/train/ped2-1 [--clips 02 04 05]

Writes ``pipelines/results/review-ped2.json`` and ``docs/images/review-ped2.png``. Needs ffmpeg (ffprobe),
chromium and chromium-driver (Debian packages) and selenium (the test extra).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipelines.settings import PED2  # noqa: E402

FPS = 10.0


def probe(path: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,nb_frames:format=duration",
                          "-of", "json", str(path)], capture_output=True, text=True, check=True).stdout  # fmt: skip
    doc = json.loads(out)
    return {"codec": doc["streams"][0]["codec_name"], "frames": int(doc["streams"][0]["nb_frames"]),
            "duration": float(doc["format"]["duration"])}  # fmt: skip


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1400",
                "--autoplay-policy=no-user-gesture-required"):  # fmt: skip
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--clips", nargs="+", default=["02", "04", "05"], help="Ped2 test clips to watch")
    ap.add_argument("--pre-roll", type=float, default=3.0)
    ap.add_argument("--post-roll", type=float, default=3.0)
    ap.add_argument("--out", type=Path, default=REPO / "pipelines" / "results" / "review-ped2.json")
    ap.add_argument("--screenshot", type=Path, default=REPO / "docs" / "images" / "review-ped2.png")
    args = ap.parse_args()

    import torch
    from rich.console import Console

    from ognet_video.host import host_info
    from ognet_video.review.app import start_server
    from ognet_video.watch import WatchOptions, watch

    torch.set_num_threads(2)
    project = Path(tempfile.mkdtemp(prefix="review-ped2-")) / "watch"
    checked = []
    for clip in args.clips:
        frames = PED2 / "testing" / "frames" / clip
        n = len(list(frames.glob("*.jpg")))
        opts = WatchOptions(fps=FPS, pre_roll=args.pre_roll, post_roll=args.post_roll, live_panel=False)
        res = watch(str(frames), args.model, opts, project=project, name=f"ped2-test{clip}",
                    console=Console(stderr=True, quiet=True))  # fmt: skip
        for line in (res.run_dir / "events.jsonl").read_text().splitlines():
            e = json.loads(line)
            first = max(0, e["start"] - round(args.pre_roll * FPS))
            last = min(n - 1, e["end"] + round(args.post_roll * FPS))
            info = probe(res.run_dir / e["clip"])
            want = (last - first + 1) / FPS
            checked.append({"clip": clip, "event": e["id"], "start": e["start"], "end": e["end"],
                            "peak_score": e["peak_score"], "threshold": e["threshold"], **info,
                            "expected_duration": want,
                            "ok": info["codec"] == "h264" and abs(info["duration"] - want) <= 1 / FPS})  # fmt: skip
    server = start_server([project], "127.0.0.1", 0)
    driver = browser()
    played = {}
    try:
        driver.get(server.url)
        deadline = time.monotonic() + 60
        state = []
        while time.monotonic() < deadline:
            state = driver.execute_script(
                "return [...document.querySelectorAll('li.event video')].map(v => v.duration)")
            if state and len(state) == len(checked) and all(d and d > 0 and d != float("inf") for d in state):
                break
            time.sleep(0.2)
        played = {"videos": len(state), "durations": state}
        args.screenshot.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(args.screenshot))
    finally:
        driver.quit()
        server.stop()
    doc = {"command": "python pipelines/review_ped2.py --model " + str(args.model) + " --clips " + " ".join(args.clips),
           "host": host_info(),
           "pre_roll": args.pre_roll, "post_roll": args.post_roll, "events": checked,
           "all_clips_ok": all(c["ok"] for c in checked), "browser": played}  # fmt: skip
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps({k: doc[k] for k in ("all_clips_ok", "browser")}, indent=2))
    print(f"{len(checked)} events; wrote {args.out} and {args.screenshot}")


if __name__ == "__main__":
    main()

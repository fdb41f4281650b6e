"""``ognet-video score`` on the 12 Ped2 test clips (frame folders): equal to ``eval``, kill-safe, how fast.

Built only on the package's public API and the installed command. Checks and measures:
  1. per-frame raw scores of ``score`` equal ``eval``'s (same checkpoint, same frames), and so do the AUCs;
  2. a ``ognet-video score`` subprocess killed with SIGKILL mid-run, then run again with the same command,
     finishes with every clip scored exactly once and outputs byte-equal to an uninterrupted run;
  3. throughput (clips/min, frames/s) with 1 and 2 decode workers: best of ``--repeats`` alternating runs.
Writes ``pipelines/results/score.json``.

    nice python pipelines/score_benchmark.py --model runs/train/ped2-1 --data PED2_ROOT
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console

from ognet_video.data import load_dataset
from ognet_video.evaluation.evaluate import evaluate
from ognet_video.evaluation.metrics import summarize
from ognet_video.host import host_info, host_line
from ognet_video.models.detector import Detector, resolve_model_path
from ognet_video.score import ScoreOptions
from ognet_video.score import score as run_score
from ognet_video.sources import ImageFiles

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipelines.settings import PED2  # noqa: E402


def cli() -> list[str]:
    script = Path(sys.executable).parent / "ognet-video"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "ognet_video.cli"]


def read_scores(path: Path) -> dict[str, np.ndarray]:
    with open(path) as f:
        rows = list(csv.DictReader(f))
    # an empty raw/score cell is an unscored frame (a clip's first: no predecessor)
    return {
        k: np.array([float(r[k]) if r[k] else np.nan for r in rows]) for k in ("raw", "score", "smoothed", "anomalous")
    }


def out_files(out: Path) -> dict[str, bytes]:
    """Visible outputs; the manifest is compared by content, since its line order follows completion order."""
    files = {}
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out)
        if p.is_file() and not any(s.startswith(".") for s in rel.parts) and p.name != "manifest.jsonl":
            files[str(rel)] = p.read_bytes()
    return files


def manifest_lines(out: Path) -> list[dict]:
    path = out / "manifest.jsonl"
    if not path.is_file():
        return []
    lines = []
    for line in path.read_text().splitlines():
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return lines


def timed_score(frames: Path, model: Path, out: Path, workers: int, console: Console) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    res = run_score([str(frames)], model, out=out, opts=ScoreOptions(workers=workers), console=console)
    assert res.exit_code == 0 and res.scored == 12, res
    return {
        "workers": workers,
        "clips": res.scored,
        "frames": res.frames,
        "seconds": round(res.seconds, 2),
        "clips_per_min": round(60 * res.scored / res.seconds, 1),
        "fps": round(res.frames / res.seconds, 1),
    }


def kill_and_resume(frames: Path, model: Path, out: Path, reference: Path, seed: int) -> dict:
    """SIGKILL ``ognet-video score`` after 3-6 finished clips plus a random delay, rerun with ``--resume``."""
    shutil.rmtree(out.parent, ignore_errors=True)
    rng = random.Random(seed)
    after, delay = rng.randint(3, 6), rng.uniform(0.0, 2.0)
    name = out.name.rsplit("-", 1)[0]  # ``out`` is PROJECT/NAME-1: the first run of that name
    cmd = [*cli(), "score", str(frames), "--model", str(model), "--project", str(out.parent), "--name", name,
           "--workers", "2"]  # fmt: skip
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    while proc.poll() is None and len(manifest_lines(out)) < after:
        time.sleep(0.05)
    time.sleep(delay)
    killed_mid_run = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    at_kill = len(manifest_lines(out))
    leftovers = sorted(p.name for p in (out / "clips").iterdir() if p.name.startswith(".")) if out.exists() else []
    visible = sorted(p.name for p in (out / "clips").iterdir() if not p.name.startswith("."))
    half_files = [n for n in visible if not (out / "clips" / n / "events.jsonl").is_file()]
    rerun = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, env=env)
    lines = manifest_lines(out)
    inputs = [r["input"] for r in lines]
    a, b = out_files(reference), out_files(out)
    a.pop("run.json", None), b.pop("run.json", None)
    same_manifest = sorted(map(_stable, lines)) == sorted(map(_stable, manifest_lines(reference)))
    return {
        "killed_after_clips": at_kill,
        "kill_delay_s": round(delay, 2),
        "killed_mid_run": killed_mid_run,
        "temp_folders_at_kill": leftovers,
        "clip_folders_without_all_files_at_kill": half_files,
        "rerun_exit_code": rerun.returncode,
        "manifest_records": len(lines),
        "each_clip_exactly_once": len(inputs) == len(set(inputs)) == 12,
        "outputs_equal_uninterrupted": a == b,
        "manifest_equal_uninterrupted": same_manifest,
        "files_compared": len(a),
    }


def _stable(rec: dict) -> str:
    return json.dumps({k: v for k, v in rec.items() if k != "seconds"}, sort_keys=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="runs/train/ped2-1")
    ap.add_argument("--data", default=str(PED2), help="Ped2 root (default: the OGNET_PED2 setting)")
    ap.add_argument("--work", default=None, help="scratch folder (default: a temp folder)")
    ap.add_argument("--results", default="pipelines/results/score.json")
    ap.add_argument("--seed", type=int, default=0, help="picks when the kill lands")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs per worker count (best is reported)")
    args = ap.parse_args()

    console = Console()
    model = resolve_model_path(args.model)
    ds = load_dataset("ped2", args.data)
    frames = Path(args.data) / "testing" / "frames"
    if not frames.is_dir():
        sys.exit(f"{frames} not found: this benchmark reads Ped2 in the frames layout")
    work = Path(args.work or tempfile.mkdtemp(prefix="score-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    quiet = Console(file=open(os.devnull, "w"))  # noqa: SIM115

    console.print("[bold]1. eval[/] (reference scores)")
    det = Detector.load(model, device="cpu")
    ev = evaluate(det, ds.test, None, console, plots=False)

    t0 = time.perf_counter()
    decoded = sum(1 for clip in sorted(frames.iterdir()) for _ in ImageFiles(clip))
    decode_ms = 1000 * (time.perf_counter() - t0) / decoded
    console.print(f"decoding alone: {decode_ms:.2f} ms/frame")

    console.print("[bold]2. score[/], 1 and 2 workers")
    runs: dict[int, list[dict]] = {1: [], 2: []}
    for rep in range(args.repeats):  # alternate, so load from other jobs hits both settings alike
        for w in (1, 2) if rep % 2 == 0 else (2, 1):
            runs[w].append(timed_score(frames, model, work / f"w{w}", w, quiet))
            console.print(runs[w][-1])
    speed = {w: min(r, key=lambda x: x["seconds"]) | {"runs_fps": [x["fps"] for x in r]} for w, r in runs.items()}

    cal = det.calibration
    diffs, labels, z, sm = [], {}, {}, {}
    flags_match = True
    for clip in ds.test:
        got = read_scores(work / "w2" / "clips" / clip.name / "scores.csv")
        got1 = read_scores(work / "w1" / "clips" / clip.name / "scores.csv")
        assert np.array_equal(got["raw"], got1["raw"], equal_nan=True)
        same_unscored = np.array_equal(np.isnan(got["raw"]), np.isnan(ev.raw[clip.name]))
        diffs.append(float(np.nanmax(np.abs(got["raw"] - ev.raw[clip.name]))) if same_unscored else float("inf"))
        z[clip.name] = np.where(np.isfinite(got["score"]), got["score"], cal.empty)  # as eval's "none" row
        labels[clip.name], sm[clip.name] = clip.labels, got["smoothed"]
        ref_sm = ev.scores["causal"][clip.name]  # eval's calibrated, causally smoothed score
        flags_match &= bool(np.array_equal(got["anomalous"].astype(bool), ref_sm > cal.threshold))
    ours = {"none": summarize(labels, z), "causal": summarize(labels, sm)}
    equality = {
        "clips": len(diffs),
        "frames": int(sum(len(c) for c in ds.test)),
        "raw_max_abs_diff": max(diffs),
        "raw_exactly_equal": max(diffs) == 0.0,
        "flags_equal_eval_threshold": flags_match,
        "auc": {
            mode: {
                "eval_micro": ev.metrics[mode]["micro_auc"],
                "score_micro": ours[mode]["micro_auc"],
                "eval_macro": ev.metrics[mode]["macro_auc"],
                "score_macro": ours[mode]["macro_auc"],
            }
            for mode in ("none", "causal")
        },
    }
    console.print(equality)

    console.print("[bold]3. SIGKILL mid-run, rerun[/]")
    kill = kill_and_resume(frames, model, work / "killed" / "ped2-1", work / "w2", args.seed)
    console.print(kill)

    env = host_info()  # once: it reads /proc/cpuinfo
    result = {
        "what": "ognet-video score on the 12 Ped2 test clips given as frame folders",
        "checkpoint": str(model),
        "host": f"{host_line(env)}, device cpu",
        "environment": env,
        "load_avg_at_end": [round(v, 2) for v in os.getloadavg()],
        "note": "throughput depends on what else runs on the machine (see load_avg_at_end); eval's speed, measured "
        "in the same run, is the yardstick.",
        "eval": {
            "ms_per_frame": round(ev.metrics["ms_per_frame"], 2),
            "fps": round(1000 / ev.metrics["ms_per_frame"], 1),
        },
        "decode_only_ms_per_frame": round(decode_ms, 3),
        "equal_to_eval": equality,
        "kill_resume": kill,
        "throughput": {str(w): s for w, s in speed.items()},
    }
    out = Path(args.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    ok = equality["raw_exactly_equal"] and kill["each_clip_exactly_once"] and kill["outputs_equal_uninterrupted"]
    console.print(f"wrote {out}: {'all checks pass' if ok else '[red]A CHECK FAILED[/]'}")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

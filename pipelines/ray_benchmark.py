"""``score --engine ray`` against ``--engine local`` on the 12 Ped2 test clips (frame folders): clips/min.

Runs, one after the other on the same clips and model: the local engine (the command's default: one
decode worker, torch on every core), then Ray on this machine with 1 and with 2 CPUs (one clip per task,
each holding one CPU: one torch thread, OpenCV on one thread, the stages one after the other). Ray's start (``ray.init``) is timed apart from the scoring, which
includes starting the worker processes. Every run's files must equal the local engine's. Writes
``pipelines/results/ray.json``.

    python pipelines/ray_benchmark.py --model runs/train/ped2-1 --data PED2_ROOT
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from ognet_video.host import host_info, host_line
from ognet_video.models.detector import resolve_model_path
from ognet_video.score import RayOptions, ScoreOptions, model_id
from ognet_video.score import score as run_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipelines.settings import PED2  # noqa: E402


def out_files(out: Path) -> dict[str, bytes]:
    """Visible outputs but run.json (it names the folder's model path only) and the manifest (completion order)."""
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and not any(s.startswith(".") for s in p.relative_to(out).parts)
        and p.name not in ("manifest.jsonl", "run.json")
    }  # fmt: skip


def timed(inputs: list[str], model: Path, out: Path, engine: str, cpus: int | None, quiet: Console) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    start = 0.0
    if engine == "ray":
        import ray

        t = time.perf_counter()
        ray.init(address="local", num_cpus=cpus, log_to_driver=False, include_dashboard=False,
                 logging_level=logging.ERROR)  # fmt: skip
        start = time.perf_counter() - t
    try:
        res = run_score(inputs, model, out=out, opts=ScoreOptions(workers=cpus), engine=engine, device="cpu",
                        ray_opts=RayOptions(cpus_per_task=1), console=quiet)  # fmt: skip
    finally:
        if engine == "ray":
            ray.shutdown()
    assert res.exit_code == 0 and res.scored == len(inputs), res
    total = start + res.seconds
    return {
        "engine": engine,
        "cpus": cpus or os.cpu_count(),
        "clips": res.scored,
        "frames": res.frames,
        "ray_start_s": round(start, 2),
        "score_s": round(res.seconds, 2),
        "clips_per_min": round(60 * res.scored / res.seconds, 2),
        "clips_per_min_with_ray_start": round(60 * res.scored / total, 2),
        "fps": round(res.frames / res.seconds, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="runs/train/ped2-1")
    ap.add_argument("--data", default=str(PED2), help="Ped2 root (default: the OGNET_PED2 setting)")
    ap.add_argument("--clips", type=int, default=12, help="the first N test clips (a smoke test: 1)")
    ap.add_argument("--work", default=None, help="scratch folder (default: a temp folder)")
    ap.add_argument("--results", default="pipelines/results/ray.json")
    args = ap.parse_args()

    console, quiet = Console(), Console(file=open(os.devnull, "w"))  # noqa: SIM115
    model = resolve_model_path(args.model)
    frames = Path(args.data) / "testing" / "frames"
    if not frames.is_dir():
        sys.exit(f"{frames} not found: this benchmark reads Ped2 in the frames layout")
    inputs = [str(p) for p in sorted(frames.iterdir()) if p.is_dir()][: args.clips]
    work = Path(args.work or tempfile.mkdtemp(prefix="ray-bench-"))
    load0 = os.getloadavg()
    runs = []
    for engine, cpus in (("local", None), ("ray", 1), ("ray", 2)):
        runs.append(timed(inputs, model, work / f"{engine}{cpus or ''}", engine, cpus, quiet))
        console.print(runs[-1])
    ref = out_files(work / "local")
    identical = {f"{r['engine']}{r['cpus']}": out_files(work / f"ray{r['cpus']}") == ref for r in runs[1:]}
    local, ray1, ray2 = runs
    result = {
        "what": f"ognet-video score on {len(inputs)} Ped2 test clips (frame folders): --engine local vs --engine ray",
        "checkpoint": f"{model.parent.name}/{model.name}",
        "model_sha256": model_id(model),
        "host": host_line(host_info()),
        "load_avg_at_start": [round(x, 2) for x in load0],
        "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
        "note": "local: 1 decode worker, torch on every core, stages overlapped; ray: one clip per task holding 1 CPU "
        "(1 torch thread, OpenCV on 1 thread, stages one after the other). score_s includes starting Ray's worker "
        "processes; ray_start_s is ray.init on this machine.",
        "runs": runs,
        "ray2_vs_local": round(ray2["clips_per_min"] / local["clips_per_min"], 3),
        "ray2_vs_ray1": round(ray2["clips_per_min"] / ray1["clips_per_min"], 3),
        "outputs_identical_to_local": identical,
    }
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(result, indent=2) + "\n")
    console.print_json(data={k: result[k] for k in ("ray2_vs_local", "ray2_vs_ray1", "outputs_identical_to_local")})
    console.print(f"wrote {args.results}")


if __name__ == "__main__":
    main()

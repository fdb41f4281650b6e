"""The two-process training of ``tests/test_distributed.py::test_torchrun_two_processes_train_one_run``, repeated
under a CPU load: does every run end with exit code 0 (issue 41: a rank aborted now and then at exit with
``terminate called without an active exception``)?

Each run is the test's command (``torchrun --standalone --nproc-per-node 2 -m ognet_video train folder`` on the
synthetic walkway, the tests' tiny recipe, ``--no-eval``) with its checks: exit code 0, one ``done in`` line, a
``model.safetensors``. ``--busy`` processes spin beside it the whole time (default two: both cores of the
reference machine taken), which is what makes a race at shutdown show. ``TORCH_CPP_LOG_LEVEL=INFO`` and
``PYTHONFAULTHANDLER=1`` are set, so a failure's log (kept under ``--logs``, its tail in the results) says where
each rank was. The counts go to ``pipelines/results/torchrun-repeat.json`` under ``--label``; ``--append`` adds
this chunk of runs to that label's earlier chunks (run 100 as chunks of 15: each one a few minutes).

    python pipelines/torchrun_repeat.py --runs 15 --label after-fix --append
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # conftest imports pipelines.settings
from conftest import TINY  # noqa: E402 - the tests' tiny recipe, the same as the test's

from ognet_video.data.synthetic import write_walkway  # noqa: E402
from ognet_video.host import host_info  # noqa: E402

OUT = ROOT / "pipelines" / "results" / "torchrun-repeat.json"
BUSY = "while True: pass"


def command(data: Path, project: Path) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
            "-m", "ognet_video", "train", "folder", "--data", str(data), "--project", str(project), "--name", "two",
            "--no-eval", *TINY]  # fmt: skip


def run_env() -> dict[str, str]:
    """The test's environment (one thread each, no colour), with torch's C++ log and Python's fault handler on."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "FORCE_COLOR")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", NO_COLOR="1", TORCH_CPP_LOG_LEVEL="INFO",
               PYTHONFAULTHANDLER="1")  # fmt: skip
    return env


def one_run(data: Path, project: Path, timeout: float) -> tuple[str | None, int, str, str]:
    """(what failed or None, exit code, stdout, stderr) of one two-process training."""
    proc = subprocess.Popen(command(data, project), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=run_env(), start_new_session=True)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: torchrun and its two ranks
        out, err = proc.communicate()
        return f"timed out after {timeout:g} s", proc.returncode, out, err
    if proc.returncode != 0:
        return f"exit code {proc.returncode}", proc.returncode, out, err
    if out.count("done in") != 1:
        return f"{out.count('done in')} 'done in' lines", 0, out, err
    if not (project / "two-1" / "model.safetensors").is_file():
        return "no model.safetensors", 0, out, err
    return None, 0, out, err


def signs(text: str) -> list[str]:
    """The lines of a log that say how a rank ended."""
    keys = ("terminate called", "Fatal Python", "Signal", "exitcode", "error", "Error", "Traceback", "SIG")
    return [line for line in text.splitlines() if any(k in line for k in keys)][-30:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--busy", type=int, default=2, help="busy-loop processes beside the runs (default 2)")
    ap.add_argument("--label", default="after-fix", help="the section of the results file (e.g. before-fix)")
    ap.add_argument("--append", action="store_true", help="add to the label's earlier chunks (else start anew)")
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds one run may take")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--logs", type=Path, default=Path(tempfile.gettempdir()) / "torchrun-repeat-logs")
    args = ap.parse_args()

    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()  # fmt: skip
    args.logs.mkdir(parents=True, exist_ok=True)
    chunk: dict = {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "commit": commit,
                   "runs": 0, "failures": 0, "failed": [], "seconds": []}  # fmt: skip
    busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(args.busy)]
    try:
        with tempfile.TemporaryDirectory(prefix="torchrun-repeat-") as tmp:
            data = write_walkway(Path(tmp) / "walkway", train_clips=3, test_clips=2, frames=20)  # the test's
            for i in range(args.runs):
                project = Path(tmp) / f"runs-{i}"
                t = time.perf_counter()
                failed, rc, out, err = one_run(data, project, args.timeout)
                chunk["seconds"].append(round(time.perf_counter() - t, 1))
                chunk["runs"] += 1
                status = "ok" if failed is None else f"FAILED: {failed}"
                print(f"run {i + 1}/{args.runs}: {status} ({chunk['seconds'][-1]} s)", flush=True)
                if failed is not None:
                    chunk["failures"] += 1
                    log = args.logs / f"{args.label}-{chunk['started']}-{i + 1}.log"
                    log.write_text(f"$ {' '.join(command(data, project))}\n--- stdout\n{out}\n--- stderr\n{err}")
                    chunk["failed"].append({"run": i + 1, "what": failed, "rc": rc, "log": str(log),
                                            "signs": signs(err + out)})  # fmt: skip
    finally:
        for p in busy:
            p.kill()
            p.wait()
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    section = results.get(args.label, {}) if args.append else {}
    chunks = [*section.get("chunks", []), chunk]
    results[args.label] = {
        "what": "two-process torchrun training (test_torchrun_two_processes_train_one_run's command and checks) "
        f"repeated beside {args.busy} busy-loop processes",  # fmt: skip
        "command": " ".join(["python", "-m", "torch.distributed.run", *command(Path("WALKWAY"), Path("RUNS"))[3:]]),
        "loop": f"python pipelines/torchrun_repeat.py --runs N --busy {args.busy} --label {args.label} --append",
        "busy_loops": args.busy,
        "env": {"TORCH_CPP_LOG_LEVEL": "INFO", "PYTHONFAULTHANDLER": "1", "OMP_NUM_THREADS": "1"},
        "host": host_info(),
        "runs": sum(c["runs"] for c in chunks),
        "failures": sum(c["failures"] for c in chunks),
        "chunks": chunks,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"{args.label}: {results[args.label]['failures']} failures in {results[args.label]['runs']} runs -> {args.out}"
    )


if __name__ == "__main__":
    main()

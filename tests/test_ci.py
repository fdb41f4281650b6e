"""CI runs what the README tells a user to run, and a test whose service is missing fails there instead of skipping:
otherwise a broken install would pass CI as a row of skips."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import service_missing

ROOT = Path(__file__).resolve().parents[1]


def test_readme_test_command_is_the_one_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    readme = (ROOT / "README.md").read_text().splitlines()
    ran = ci[ci.index("# --- README: test command (keep in sync) ---") + 1]
    shown = readme[readme.index("<!-- test command: keep byte-identical to .ci/run -->") + 2]
    assert readme[readme.index(shown) - 1] == "```bash" and ran == shown


def test_ci_sets_ci_for_the_tests_and_installs_the_services_without_ignoring_failure():
    text = (ROOT / ".ci" / "run").read_text()
    setup = text[: text.index("# --- README: test command")]
    assert 'export CI="${CI:-true}"' in setup and 'apt-get install -y -q "${missing[@]}"' in setup
    for package in ("mosquitto", "ffmpeg", "chromium", "chromium-driver"):  # MQTT, ffprobe, the browser test
        assert f"missing+=({package})" in setup, package
    assert "exit 1" in setup and "|| true" not in setup  # a failed install must stop CI, not pass as skipped tests


def test_a_missing_service_fails_in_ci_and_skips_elsewhere(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"no broker \(CI is set: \.ci/run must install it\)"):
        service_missing("no broker")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match=r"^no broker$"):
        service_missing("no broker")

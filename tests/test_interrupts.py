"""Every Ctrl-C ends the run (issue #25): while a folder benchmark is being listed, and after the results are
written (the exit code stays the command's, never a death by signal)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest


@pytest.mark.slow
def test_ctrl_c_while_a_large_folder_is_listed_ends_the_run(tmp_path):
    root = tmp_path / "bench"
    for label in ("0_real", "1_fake"):
        folder = root / "test" / label
        folder.mkdir(parents=True)
        for i in range(10_000):
            (folder / f"{i:05d}.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # a header and nothing else
    command = [sys.executable, "-m", "harness.cli", "run", "--model", "noop", "--tasks", "wildrf", "--data-root",
               str(root), "--output-dir", str(tmp_path / "out"), "--split", "test"]  # fmt: skip
    for _ in range(3):
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2.5)  # importing, then listing 20,000 files
        proc.send_signal(signal.SIGINT)
        try:
            _, stderr = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("the run did not end within 20 s of Ctrl-C")
        assert proc.returncode in (130, 0, 1), stderr


def test_a_ctrl_c_after_the_command_finished_keeps_its_exit_code():
    code = (
        "import os, signal, sys, time\n"
        "import harness.cli\n"
        "sys.argv = ['harness', 'ls', 'tasks']\n"
        "status = harness.cli.main()\n"
        "os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C as the program exits\n"
        "time.sleep(2)\n"
        "sys.exit(status)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ))  # fmt: skip
    assert done.returncode == 0, (done.returncode, done.stderr[-500:])
    assert "aigi-mini" in done.stdout

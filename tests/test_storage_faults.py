"""Files: nothing torn, nothing mixed, nothing left behind (issue #25). Disk full, read-only folders and caches,
corrupt and damaged caches, kills between a run's files, concurrent runs on one cache, checkpoints rewritten
in place. Where the machine lets a test mount a small or read-only filesystem (root), the fault is real;
the same paths are also driven by injected errors, which run everywhere."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from toy_components import ToyPlugin, write_toy_data

from harness.cache import ResponseCache
from harness.cli import run_command
from harness.plugin_manager import HarnessPlugins
from harness.records import SampleRecord
from harness.results import read_samples, samples_path
from harness.run_lock import RunLock, RunLockedError
from harness.runner import Evaluator, RunConfig
from harness.storage import StorageError, atomic_write, publish_exclusive, remove_stale_temps


def _temps(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_toy_data(tmp_path_factory.mktemp("storage") / "data", n_good=12, bad=False)


def _config(data: Path, out: Path, **overrides) -> RunConfig:
    return RunConfig(
        model="mean-model",
        tasks="toy-task",
        data_root=str(data),
        output_dir=out,
        progress=False,
        bootstrap=0,
        audit=False,
        num_workers=1,
        **overrides,
    )


def _evaluate(data: Path, out: Path, **overrides):
    plugins = HarnessPlugins(load_entrypoints=False, extra_plugins=(ToyPlugin,))
    return Evaluator(_config(data, out, **overrides), plugins).run()


@pytest.fixture
def toy_cli(monkeypatch):
    """``run_command`` in this process with the toy plugin registered (so faults can be injected)."""
    import harness.cli as cli

    monkeypatch.setattr(cli, "get_plugins", lambda: HarnessPlugins(load_entrypoints=False, extra_plugins=(ToyPlugin,)))
    return run_command


def _mount(target: Path, options: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True)
    except FileNotFoundError:
        pytest.skip("no mount command on this machine: the injected-fault tests cover this path")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()}): the injected-fault tests cover it")


@pytest.fixture
def small_disk(tmp_path):
    """A 96 KiB filesystem (a real 'No space left on device')."""
    target = tmp_path / "small"
    _mount(target, "size=96k")
    yield target
    subprocess.run(["umount", "-l", str(target)], capture_output=True)


# -- atomic writes ----------------------------------------------------------------------------------------


def test_a_failed_write_names_the_file_and_leaves_the_old_one_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "board.md"
    target.write_text("old board")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("harness.storage.os.fsync", full)
    with pytest.raises(StorageError) as caught:
        atomic_write(target, "new board")
    message = str(caught.value)
    assert str(target) in message and "No space left on device" in message and "disk is full" in message
    assert target.read_text() == "old board"
    assert _temps(tmp_path) == []


def test_an_interrupted_write_leaves_no_temp(tmp_path, monkeypatch):
    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr("harness.storage.os.fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "results.json", "{}")
    assert list(tmp_path.iterdir()) == []


def test_temps_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f".results.json.{dead.pid}.0123abcd.tmp"
    live = tmp_path / f".results.json.{os.getpid()}.0123abcd.tmp"
    stale.write_text("half")
    live.write_text("being written")
    assert remove_stale_temps(tmp_path) == [stale]
    assert live.exists() and not stale.exists()


def test_publish_exclusive_never_replaces(tmp_path):
    publish_exclusive(tmp_path / "results_1.json", "first")
    with pytest.raises(FileExistsError):
        publish_exclusive(tmp_path / "results_1.json", "second")
    assert (tmp_path / "results_1.json").read_text() == "first"
    assert _temps(tmp_path) == []


def test_disk_full_while_writing_results_is_one_line_naming_the_file(data, tmp_path, monkeypatch, toy_cli, capsys):
    real_fsync = os.fsync

    def full(fd):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr("harness.storage.os.fsync", full)
    out = tmp_path / "out"
    code = toy_cli(["run", "--model", "mean-model", "--tasks", "toy-task", "--data-root", str(data),
                    "--output-dir", str(out), "--quiet", "--bootstrap", "0", "--no-audit"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: cannot write ") and "samples_" in err[0], err
    assert "disk is full" in err[0]
    assert _temps(out) == []


def test_a_really_full_disk(data, small_disk, toy_cli, capsys):
    filler = small_disk / "filler"
    with open(filler, "wb") as handle, contextlib.suppress(OSError):  # leave a few KiB: the cache opens
        handle.write(b"\0" * (90 * 1024))
    code = toy_cli(["run", "--model", "mean-model", "--tasks", "toy-task", "--data-root", str(data),
                    "--output-dir", str(small_disk / "out"), "--quiet", "--bootstrap", "0", "--no-audit"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: cannot ") and str(small_disk) in err[0], err
    assert _temps(small_disk) == []


def test_a_read_only_output_folder(data, tmp_path, toy_cli, capsys):
    target = tmp_path / "ro"
    _mount(target, "ro,size=64k")
    try:
        code = toy_cli(["run", "--model", "mean-model", "--tasks", "toy-task", "--data-root", str(data),
                        "--output-dir", str(target / "out"), "--quiet"])  # fmt: skip
        err = capsys.readouterr().err.strip().splitlines()
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)
    assert code == 2
    assert len(err) == 1 and str(target / "out") in err[0] and "read-only" in err[0], err


# -- a run's files belong together ----------------------------------------------------------------------


def test_results_json_names_its_own_samples_even_if_a_kill_came_between_the_copies(data, tmp_path):
    out = tmp_path / "out"
    [first] = _evaluate(data, out, limit=4)
    records = read_samples(first.results_path)
    assert len(records) == 4
    # a later run died after replacing samples.jsonl but before results.json
    (first.results_path.parent / "samples.jsonl").write_text(
        json.dumps(SampleRecord("x", "s", "test", 1, "score").to_json()) + "\n"
    )
    assert samples_path(first.results_path).name == json.loads(first.results_path.read_text())["samples_file"]
    assert [r.sample_id for r in read_samples(first.results_path)] == [r.sample_id for r in records]


def test_every_run_gets_its_own_files_and_no_temp_is_left(data, tmp_path):
    out = tmp_path / "out"
    for _ in range(3):
        _evaluate(data, out, limit=4)
    folder = next(out.glob("*/toy-task"))
    assert len(list(folder.glob("results_*.json"))) == 3 and len(list(folder.glob("samples_*.jsonl"))) == 3
    assert _temps(out) == []


# -- the response cache ---------------------------------------------------------------------------------


def test_a_file_that_is_no_cache_is_one_line(data, tmp_path, toy_cli, capsys):
    out = tmp_path / "out"
    (out / ".cache").mkdir(parents=True)
    (out / ".cache" / "responses.sqlite").write_bytes(b"this is not a database at all" * 100)
    code = toy_cli(["run", "--model", "mean-model", "--tasks", "toy-task", "--data-root", str(data),
                    "--output-dir", str(out), "--quiet"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "responses.sqlite" in err[0] and "--no-cache" in err[0], err


def test_a_damaged_payload_is_asked_again_not_trusted(data, tmp_path):
    out = tmp_path / "out"
    log = tmp_path / "computed.log"
    _evaluate(data, out, model_args={"log": str(log)})
    assert len(log.read_text().split()) == 12
    with sqlite3.connect(out / ".cache" / "responses.sqlite") as db:
        key, payload = db.execute("SELECT key, payload FROM responses ORDER BY key LIMIT 1").fetchone()
        flipped = payload.replace("0.", "1.", 1) if "0." in payload else payload.replace("1", "2", 1)
        db.execute("UPDATE responses SET payload=? WHERE key=?", (flipped, key))
    log.write_text("")
    [again] = _evaluate(data, out, model_args={"log": str(log)})
    assert len(log.read_text().split()) == 1, "only the damaged answer was asked again"
    assert again.n_cached == 11


def test_a_cache_without_checksums_is_still_read(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE responses (key TEXT PRIMARY KEY, payload TEXT NOT NULL, created REAL NOT NULL)")
        db.execute("INSERT INTO responses VALUES ('k', '{\"score\": 0.25}', 0)")
    cache = ResponseCache(path)
    assert cache.get_many(["k"]) == {"k": {"score": 0.25}}
    cache.put_many([("k2", {"score": 0.5})])
    assert cache.get_many(["k2"]) == {"k2": {"score": 0.5}}
    cache.close()


def test_a_read_only_cache_is_read_and_never_changed(data, tmp_path, monkeypatch):
    out = tmp_path / "out"
    [first] = _evaluate(data, out)
    cache_file = out / ".cache" / "responses.sqlite"
    ResponseCache(cache_file).close()  # checkpoint the WAL into the file
    for extra in ("-wal", "-shm"):
        Path(str(cache_file) + extra).unlink(missing_ok=True)
    before = cache_file.read_bytes()
    monkeypatch.setattr("harness.cache._read_only", lambda path: True)  # as for a user without write access
    log = tmp_path / "computed.log"
    [again] = _evaluate(data, tmp_path / "out2", cache_path=cache_file, model_args={"log": str(log)}, limit=20)
    assert again.n_cached == 12 and not log.exists(), "every answer came from the read-only cache"
    assert cache_file.read_bytes() == before
    assert not Path(str(cache_file) + "-wal").exists()


def test_a_really_read_only_cache(data, tmp_path):
    out = tmp_path / "out"
    _evaluate(data, out)
    source = out / ".cache" / "responses.sqlite"
    ResponseCache(source).close()
    ro = tmp_path / "ro"
    _mount(ro, "size=8m")
    try:
        (ro / "responses.sqlite").write_bytes(source.read_bytes())
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True, capture_output=True)
        [again] = _evaluate(data, tmp_path / "out2", cache_path=ro / "responses.sqlite")
    finally:
        subprocess.run(["umount", "-l", str(ro)], capture_output=True)
    assert again.status == "done" and again.n_cached == 12


# -- one run per cache ----------------------------------------------------------------------------------


def test_a_second_run_on_a_held_cache_stops_and_names_the_holder(data, tmp_path, toy_cli, capsys):
    out = tmp_path / "out"
    log = tmp_path / "computed.log"
    with RunLock(out / ".cache" / "responses.sqlite", ["harness", "run", "--model", "first"]):
        with pytest.raises(RunLockedError, match=f"pid {os.getpid()}.*harness run --model first"):
            _evaluate(data, out, model_args={"log": str(log)})
        code = toy_cli(["run", "--model", "mean-model", "--model-args", f"log={log}", "--tasks", "toy-task",
                        "--data-root", str(data), "--output-dir", str(out), "--quiet"])  # fmt: skip
        err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "another harness run is using the response cache" in err[0]
    assert not log.exists(), "nothing was asked while the cache was held"
    [outcome] = _evaluate(data, out, model_args={"log": str(log)})  # released: runs
    assert outcome.status == "done"


def test_two_runs_at_once_never_pay_twice(data, tmp_path):
    """The same command twice at once: one runs, the other stops before asking anything."""
    import sys

    from conftest import fake_distribution

    tests = Path(__file__).resolve().parent
    site = fake_distribution(tmp_path / "site", "harness-toy", "toy", "harness_toy_plugin",
                             "from toy_components import register_models, register_tasks  # noqa: F401\n")  # fmt: skip
    env = dict(os.environ, PYTHONPATH=f"{site}{os.pathsep}{tests}")
    env.pop("HARNESS_LOAD_PLUGINS", None)
    log = tmp_path / "computed.log"
    command = [sys.executable, "-m", "harness.cli", "run", "--model", "mean-model", "--model-args",
               f"log={log},sleep=0.2", "--tasks", "toy-task", "--data-root", str(data), "--batch-size", "2",
               "--output-dir", str(tmp_path / "out"), "--quiet"]  # fmt: skip
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while not (log.exists() and log.read_text()) and time.time() < deadline:
        time.sleep(0.02)
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    first.communicate(timeout=120)
    assert first.returncode == 0
    assert second.returncode == 2 and "another harness run is using the response cache" in second.stderr
    computed = log.read_text().split()
    assert len(computed) == len(set(computed)) == 12, "no sample was computed twice"


# -- checkpoints ----------------------------------------------------------------------------------------


def test_a_checkpoint_rewritten_in_place_with_its_old_mtime_is_hashed_again(tmp_path):
    from harness.fingerprint import hash_path_memo

    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"A" * 4096)
    first = hash_path_memo(weights)
    stat = weights.stat()
    with open(weights, "r+b") as handle:  # same size, content changed, mtime put back
        handle.write(b"B")
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert weights.stat().st_size == stat.st_size and weights.stat().st_mtime_ns == stat.st_mtime_ns
    assert hash_path_memo(weights) != first


def test_rehash_reads_checkpoints_again(tmp_path, monkeypatch):
    import harness.fingerprint as fingerprint

    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"A" * 4096)
    fingerprint.hash_path_memo(weights)
    reads = []
    real = fingerprint.hash_file
    monkeypatch.setattr(fingerprint, "hash_file", lambda path: reads.append(path) or real(path))
    fingerprint.hash_path_memo(weights)
    assert reads == [], "the memo holds"
    with fingerprint.rehashing():
        fingerprint.hash_path_memo(weights)
    assert len(reads) == 1

"""Output folders owned by one run (qwenvl_data/outdir.py): overlap refused, one holder at a time, stale
locks taken over, the in-progress marker left by a failed run and refused by `validate` (issue 14,
findings 3 and 6)."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qwenvl_data import outdir
from qwenvl_data.errors import BadInput, UsageError

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "qwenvl_data.pipelines.cli"]


@pytest.mark.parametrize(
    "inp, out",
    [
        ("out/pairs", "out"),
        ("out", "out/x"),
        ("out", "out"),
        ("out/a/*.parquet", "out/a"),
        ("out/./pairs/../pairs/x.parquet", "out"),
    ],
)
def test_overlapping_input_and_output_refused(tmp_path, inp, out):
    (tmp_path / "out").mkdir()
    with pytest.raises(UsageError, match="the output folder .*must not write where it reads"):
        outdir.check_no_overlap(tmp_path / out, [("--input", str(tmp_path / inp))])


def test_separate_and_sibling_folders_allowed(tmp_path):
    outdir.check_no_overlap(
        tmp_path / "out",
        [("--input", str(tmp_path / "out2")), ("--x", None), ("--input", str(tmp_path / "in/*.parquet"))],
    )


def test_symlinked_input_inside_output_refused(tmp_path):
    (tmp_path / "out" / "pairs").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "out" / "pairs")
    with pytest.raises(UsageError, match="inside the output folder"):
        outdir.check_no_overlap(tmp_path / "out", [("--input", str(tmp_path / "link"))])


def test_marker_written_first_removed_last_and_lock_released(tmp_path):
    out = tmp_path / "o"
    with outdir.own_output(out, stage="t"):
        assert (out / outdir.MARKER).exists() and (out / outdir.LOCK).exists()
        lock = json.loads((out / outdir.LOCK).read_text())
        assert lock["pid"] == os.getpid() and lock["host"] == socket.gethostname() and lock["stage"] == "t"
    assert not (out / outdir.MARKER).exists() and not (out / outdir.LOCK).exists()


def test_file_url_output_is_held_in_its_own_folder(tmp_path, monkeypatch):
    """file:///x is the local folder /x: its lock and marker go there (not into ./file:/x under the
    working directory), so a second run on the same file:// output is refused."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "o"
    with outdir.own_output(f"file://{out}", stage="t"):
        assert (out / outdir.MARKER).exists() and (out / outdir.LOCK).exists()
        with pytest.raises(UsageError, match="in use"):
            with outdir.own_output(str(out), stage="t"):
                pass
    assert not (tmp_path / "file:").exists()
    assert not (out / outdir.MARKER).exists() and not (out / outdir.LOCK).exists()


def test_failed_run_leaves_marker_and_validate_refuses(tmp_path):
    out = tmp_path / "o"
    with pytest.raises(RuntimeError):
        with outdir.own_output(out, stage="filter"):
            (out / "pairs").mkdir()
            raise RuntimeError("killed mid-write")
    assert (out / outdir.MARKER).exists() and not (out / outdir.LOCK).exists()
    with pytest.raises(BadInput, match="unfinished output"):
        outdir.refuse_in_progress(out / "pairs")
    r = subprocess.run(CLI + ["validate", str(out / "pairs")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 1 and "unfinished output" in r.stderr and "Traceback" not in r.stderr
    with outdir.own_output(out, stage="filter"):  # the rerun completes it
        pass
    assert outdir.in_progress(out / "pairs") is None


def test_second_run_refused_while_first_holds_the_folder(tmp_path):
    out = tmp_path / "o"
    with outdir.own_output(out, stage="first"):
        with pytest.raises(UsageError, match=r"in use by run \w+ \(first, pid \d+ on .*remove .*\.qwenvl\.lock"):
            with outdir.own_output(out, stage="second"):
                pass
        assert (out / outdir.LOCK).exists()  # the refused run did not release the holder's lock


def test_live_process_on_this_host_holds_the_lock(tmp_path):
    proc = subprocess.Popen(["sleep", "30"])
    try:
        (tmp_path / outdir.LOCK).write_text(
            json.dumps(
                {"pid": proc.pid, "host": socket.gethostname(), "start": outdir._start_time(proc.pid), "run_id": "x"}
            )
        )
        with pytest.raises(UsageError, match="in use by run x"):
            with outdir.own_output(tmp_path, stage="t"):
                pass
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize(
    "lock",
    [
        {"pid": 2**22 + 12345, "run_id": "dead"},  # no such process
        {"pid": os.getppid(), "start": "1", "run_id": "reused"},  # pid alive, but another process (start time)
        {},  # unreadable / empty lock, old
    ],
)
def test_stale_lock_taken_over(tmp_path, lock):
    path = tmp_path / outdir.LOCK
    path.write_text(json.dumps({**lock, "host": socket.gethostname()}) if lock else "")
    os.utime(path, (time.time() - 60, time.time() - 60))
    with outdir.own_output(tmp_path, stage="t"):
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert not path.exists()


def test_lock_of_another_host_is_respected(tmp_path):
    (tmp_path / outdir.LOCK).write_text(json.dumps({"pid": 1, "host": "elsewhere", "run_id": "r"}))
    with pytest.raises(UsageError, match="on elsewhere"):
        with outdir.own_output(tmp_path, stage="t"):
            pass


def test_unwritable_output_is_one_line_usage_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="cannot create the output folder"):
        with outdir.own_output(tmp_path / "file" / "out", stage="t"):
            pass
    with pytest.raises(UsageError, match="exists and is not a folder"):
        with outdir.own_output(tmp_path / "file", stage="t"):
            pass
    ro = Path("/sys/qwenvl-out") if os.geteuid() == 0 else tmp_path / "ro"
    if os.geteuid() != 0:
        ro.mkdir()
        ro.chmod(0o555)
    with pytest.raises(UsageError, match="cannot (create|write to) the output folder"):
        with outdir.own_output(ro / "x" if os.geteuid() == 0 else ro, stage="t"):
            pass


def test_two_processes_racing_for_one_folder_one_wins(tmp_path):
    code = (
        "import sys, time; from qwenvl_data import outdir; from qwenvl_data.errors import UsageError\n"
        "try:\n"
        "    with outdir.own_output(sys.argv[1], stage='race'):\n"
        "        time.sleep(2)\n"
        "    print('won')\n"
        "except UsageError as e:\n"
        "    print('lost', e)\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "o")], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    results = [p.communicate(timeout=60)[0].split()[0] for p in procs]
    assert sorted(results) == ["lost", "lost", "won"]


def test_real_runs_concurrent_refused_killed_marked_rerun_completes(tmp_path):
    """download A holds OUT; B into OUT is refused; A killed -9 leaves its marker and validate/report refuse
    OUT; the rerun takes over the dead run's lock and completes (finding 6, end to end)."""
    import signal

    from test_download_job import write_pairs
    from test_download_netguard import serve

    with serve.ImageServer("127.0.0.1") as srv:
        write_pairs(
            tmp_path / "pairs",
            [f"{srv.base}/slow.jpg?delay=8&w=320&h=240"]
            + [f"{srv.base}/img/a{i}.jpg?w=320&h=240&seed={i}" for i in range(3)],
        )
        cfg = tmp_path / "c.yaml"
        cfg.write_text("download: {min_image_side: 100, processes: 1, threads: 2}\n")
        cmd = CLI + [
            "download",
            "--input",
            str(tmp_path / "pairs"),
            "--allow-addresses",
            "127.0.0.1",
            "--config",
            str(cfg),
            "--output",
        ]
        out = tmp_path / "out"
        a = subprocess.Popen(
            cmd + [str(out)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        try:
            deadline = time.time() + 60
            while not (out / outdir.LOCK).exists() and time.time() < deadline:
                time.sleep(0.1)
            assert (out / outdir.MARKER).exists()
            b = subprocess.run(cmd + [str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120)
            assert b.returncode == 2 and "output folder is in use by run" in b.stderr, b.stderr
        finally:
            os.killpg(a.pid, signal.SIGKILL)
            a.wait()
        assert (out / outdir.MARKER).exists() and (out / outdir.LOCK).exists()  # kill -9: nothing cleaned up
        for check in (["validate", str(out)], ["report", str(out)]):
            r = subprocess.run(CLI + check, cwd=ROOT, capture_output=True, text=True, timeout=120)
            assert r.returncode == 1 and "unfinished output" in r.stderr, r.stderr
        r = subprocess.run(cmd + [str(out)], cwd=ROOT, capture_output=True, text=True, timeout=240)
        assert r.returncode == 0, r.stderr[-2000:]
    assert not (out / outdir.MARKER).exists() and not (out / outdir.LOCK).exists()
    v = subprocess.run(CLI + ["validate", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert v.returncode == 0, v.stderr


def test_object_store_output_through_storage():
    """A URL output (fsspec memory://, as s3:// on a cluster): lock, marker, refusal, stale takeover."""
    from qwenvl_data import storage

    url = f"memory://qwenvl-outdir-{os.getpid()}/out"
    with pytest.raises(RuntimeError):
        with outdir.own_output(url, stage="t"):
            with pytest.raises(UsageError, match="in use by run"):
                with outdir.own_output(url, stage="t2"):
                    pass
            raise RuntimeError("killed")
    assert outdir.in_progress(url + "/pairs")[0] == url and not storage.exists(url + "/" + outdir.LOCK)
    storage.write_json(url + "/" + outdir.LOCK, {"pid": 2**22 + 7, "host": socket.gethostname(), "run_id": "d"})
    with outdir.own_output(url, stage="t"):
        assert storage.read_json(url + "/" + outdir.LOCK)["pid"] == os.getpid()
    assert outdir.in_progress(url) is None and not storage.exists(url + "/" + outdir.LOCK)


def test_an_input_a_run_left_unfinished_is_refused_except_a_checkpoint(tmp_path):
    with pytest.raises(RuntimeError):
        with outdir.own_output(tmp_path / "filter", stage="filter"):
            (tmp_path / "filter" / "pairs").mkdir()
            raise RuntimeError("killed")
    with pytest.raises(BadInput, match=r"--input|unfinished output"):
        with outdir.own_output(
            tmp_path / "download", stage="download", inputs=[("--input", str(tmp_path / "filter" / "pairs"))]
        ):
            pass
    assert not (tmp_path / "download").exists()  # refused before the output was touched
    with outdir.own_output(tmp_path / "stage2", stage="train", inputs=[("--init", str(tmp_path / "filter"))]):
        pass

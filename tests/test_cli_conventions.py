"""CLI conventions a new user trips over: --version, output modes that combine,
file modes, exit codes, progress, missing paths, the queue head, wording,
the report's header and diffs, and a table that fits 80 columns."""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import sys
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

import pytest
from conftest import REPO, write
from rich.console import Console

from k8s_auto_fix.checks import REGISTRY
from k8s_auto_fix.detect import DetectOptions, detect
from k8s_auto_fix.report.render import print_table

POD = """\
# the web pod
apiVersion: v1
kind: Pod
metadata:
  name: web  # keep this name
  namespace: shop
spec:
  containers:
    - name: web
      image: example.com/shop/web:1.25  # pinned by CI
"""
SAFE = ("--select", "unset-seccomp-profile")  # one check whose fix is safe: everything gets fixed


@contextmanager
def umask(mask: int):
    before = os.umask(mask)
    try:
        yield
    finally:
        os.umask(before)


def test_version_prints_the_package_version(cli):
    code, out, _ = cli("--version")
    assert code == 0 and out.strip() == f"k8s-auto-fix {version('k8s-auto-fix')}"


def test_write_with_diff_prints_what_it_wrote(cli, tmp_path):
    path = write(tmp_path, "pod.yaml", POD)
    code, out, err = cli("fix", *SAFE, "--write", "--diff", str(path))
    assert code == 0 and "seccompProfile" in path.read_text()
    assert "+++ b/" in out and re.search(r"^\+ *seccompProfile:", out, re.M), out
    assert "1 finding(s) fixed in 1 file(s)" in err
    # Standard input has one stdout: the fixed manifest (--write -) or the diff, not both.
    code, out, err = cli("fix", "--write", "--diff", "-", input=POD)
    assert code == 2 and out == "" and "--diff cannot print there too" in err


def test_write_with_out_dir_does_both_and_exit_codes_follow_what_is_left(cli, tmp_path):
    path = write(tmp_path, "app/pod.yaml", POD)
    copies = tmp_path / "fixed"
    code, out, err = cli("fix", *SAFE, "--out-dir", str(copies), str(path))
    assert code == 0, err  # everything fixed in the copies: nothing left
    assert "seccompProfile" in (copies / "pod.yaml").read_text() and "seccompProfile" not in path.read_text() and out == ""
    code, _, err = cli("fix", *SAFE, "--diff", str(path))
    assert code == 1 and "1 finding(s) fixable in 1 file(s)" in err  # a diff fixes nothing: the finding is still there
    code, _, _ = cli("fix", *SAFE, "--write", "--out-dir", str(tmp_path / "again"), str(path))
    assert code == 0 and "seccompProfile" in path.read_text() and "seccompProfile" in (tmp_path / "again" / "pod.yaml").read_text()
    # A finding no fix removes (review fixes are off) is left: exit 1, even with the files written.
    code, _, _ = cli("fix", "--select", "privilege-escalation-not-disabled", "--out-dir", str(tmp_path / "third"), str(path))
    assert code == 1


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_new_files_honour_the_umask_and_rewritten_ones_keep_their_mode(cli, tmp_path, mask):
    path = write(tmp_path, "app/pod.yaml", POD)
    path.chmod(0o640)
    with umask(mask):
        cli("detect", str(path), "--out", str(tmp_path / "d.json"))
        cli("detect", str(path), "--format", "sarif", "--out", str(tmp_path / "d.sarif"))
        cli("fix", *SAFE, "--out-dir", str(tmp_path / "copies"), str(path))
        cli("fix", *SAFE, "--write", str(path))
    for made in (tmp_path / "d.json", tmp_path / "d.sarif", tmp_path / "copies" / "pod.yaml"):
        assert made.stat().st_mode & 0o777 == 0o666 & ~mask, made
    assert path.stat().st_mode & 0o777 == 0o640 and "seccompProfile" in path.read_text()


def test_run_report_and_queue_head_say_where_and_what(cli, tmp_path):
    app = write(tmp_path, "app/pod.yaml", POD)
    out = tmp_path / "run"
    with umask(0o022):
        code, stdout, _ = cli("run", str(app.parent), "--out", str(out))
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in (out / "report.html", out / "detections.json", out / "metrics.json"))
    # The head of the queue names check, object and file (not only hex ids).
    head = stdout[stdout.index("head of the queue") :]
    assert "Pod/web" in head and "pod.yaml" in head.replace("\n", "").replace(" ", "").replace("│", "")
    page = (out / "report.html").read_text()
    assert str(app.parent) in page and version("k8s-auto-fix") in page and re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", page)
    for term in ("<dt>score</dt>", "<dt>R</dt>", "<dt>p</dt>", "<dt>E[t]</dt>"):
        assert term in page
    # The rescan gate did not run: no "rescan 0" bar among the rejections.
    assert ">rescan<" not in page and "rescan</text>" not in page
    # Diffs are of the file's own text: its comments are the context.
    assert "# pinned by CI" in page and "+++ b/" in page


def test_missing_path_prints_the_error_only(cli, tmp_path):
    for fmt in ("json", "sarif", "table"):
        code, out, err = cli("detect", str(tmp_path / "nope.yaml"), "--format", fmt)
        assert code == 2 and out == "" and "nope.yaml: no such file or directory" in err


def test_table_fits_80_columns_in_three_lines_a_finding():
    console = Console(width=80, file=io.StringIO(), force_terminal=False, color_system=None)
    result = detect([str(REPO / "examples")], [c for c in REGISTRY.values() if c.enabled_by_default], DetectOptions(jobs=1))
    print_table(result, console)
    lines = console.file.getvalue().splitlines()
    assert all(len(line) <= 80 for line in lines)
    files = len({d.manifest_path for d in result.detections})
    findings = len(result.detections)
    heads = [line for line in lines if re.match(r"  \d+:\d+ ", line)]
    assert len(heads) == findings and len(lines) - files - 3 <= 3 * findings  # a head line, the message (a long one wraps)
    assert any(re.match(r"  9:7 +medium +latest-tag +Pod/nginx-latest \[nginx\]$", line) for line in lines)


def _on_a_terminal(*args: str, cwd: Path) -> str:
    """The CLI in its own process with stderr on a pseudo-terminal; what it drew there."""
    leader, follower = pty.openpty()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "COLUMNS": "100", "TERM": "xterm"}
    proc = subprocess.Popen([sys.executable, "-m", "k8s_auto_fix", *args], stdout=subprocess.DEVNULL, stderr=follower, cwd=cwd, env=env)
    os.close(follower)
    drawn = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the process closed its end
            break
        if not chunk:
            break
        drawn += chunk
    proc.wait(timeout=300)
    os.close(leader)
    return drawn.decode("utf-8", "replace")


def test_fix_shows_progress_on_a_terminal_only(cli, tmp_path):
    for i in range(3):
        write(tmp_path, f"app/pod{i}.yaml", POD.replace("name: web  #", f"name: web{i}  #"))
    drawn = _on_a_terminal("fix", *SAFE, "--diff", "app", cwd=tmp_path)
    assert "3/3" in drawn and "files, 3 finding(s) fixable" in drawn, drawn
    code, _, err = cli("fix", *SAFE, "--diff", str(tmp_path / "app"))
    assert code == 1 and "files, 3 finding(s)" not in err and "━" not in err  # not a terminal: the summary only

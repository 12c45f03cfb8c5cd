"""Issue 11, items 12-15: unreadable folders, write-back side effects, standard
input and odd file names, UTF-16 files."""

from __future__ import annotations

import codecs
import os
import shutil
import stat
import subprocess

import pytest
from conftest import cli_process, write

POD = """
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
    - name: app
      image: nginx:1.25
"""
FIXED_MARK = "seccompProfile"  # what the default safe fix adds to POD


# --- 12: an unreadable folder ---------------------------------------------------------------


@pytest.mark.parametrize("command", ["detect", "fix"])
def test_an_unreadable_folder_is_an_error_not_a_pass(tmp_path, command):
    write(tmp_path, "app/pod.yaml", POD)
    locked = tmp_path / "app" / "locked"
    write(locked, "hidden.yaml", POD)
    locked.chmod(0)
    try:
        result = cli_process(command, str(tmp_path / "app"), *(["--out", str(tmp_path / "d.json")] if command == "detect" else []), as_user=True)
    finally:
        locked.chmod(0o755)
    assert result.returncode == 2, result.stderr
    assert f"{locked}: cannot read this folder" in result.stderr


# --- 13: write-back side effects ------------------------------------------------------------


def test_write_goes_through_a_symlink_inside_the_tree(tmp_path, cli):
    real = write(tmp_path, "app/real/pod.yaml", POD)
    link = tmp_path / "app" / "link.yaml"
    link.symlink_to(real)
    cli("fix", "--write", str(link))
    assert link.is_symlink() and FIXED_MARK in real.read_text()


def test_a_symlink_out_of_the_tree_is_refused(tmp_path, cli):
    outside = write(tmp_path, "elsewhere/pod.yaml", POD)
    link = tmp_path / "app" / "pod.yaml"
    link.parent.mkdir()
    link.symlink_to(outside)
    code, _, stderr = cli("fix", "--write", str(tmp_path / "app"))
    assert code == 1 and "outside the input tree" in stderr and "fixed in 0 file(s)" in stderr
    assert outside.read_text() == POD.lstrip() and link.is_symlink()


def test_write_keeps_mode_owner_and_setuid(tmp_path, cli):
    path = write(tmp_path, "app/pod.yaml", POD)
    uid, gid = (1234, 2345) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    os.chown(path, uid, gid)
    path.chmod(0o4751)
    cli("fix", "--write", str(path))
    after = path.stat()
    assert FIXED_MARK in path.read_text()
    assert (after.st_uid, after.st_gid, stat.S_IMODE(after.st_mode)) == (uid, gid, 0o4751)


def test_a_hard_linked_file_is_not_split(tmp_path, cli):
    path = write(tmp_path, "app/pod.yaml", POD)
    other = tmp_path / "pod-link.yaml"
    os.link(path, other)
    code, _, stderr = cli("fix", "--write", str(tmp_path / "app"))
    assert "2 hard links share this file" in stderr and code == 1
    assert os.stat(path).st_ino == os.stat(other).st_ino and path.read_text() == POD.lstrip()


def test_a_killed_runs_temp_file_is_cleaned_up_by_the_next(tmp_path, cli):
    path = write(tmp_path, "app/pod.yaml", POD)
    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid is no process now
    stale = tmp_path / "app" / f".pod.yaml.k8s-auto-fix-{dead.pid}-abcd1234.tmp"
    stale.write_text("half")
    cli("fix", "--write", str(tmp_path / "app"))
    assert FIXED_MARK in path.read_text()
    assert sorted(p.name for p in (tmp_path / "app").iterdir()) == ["pod.yaml"]


# --- 14: standard input and file names ----------------------------------------------------


def test_diff_of_stdin(tmp_path):
    result = cli_process("fix", "--diff", "-", input=POD.lstrip(), cwd=tmp_path)
    assert result.returncode == 1 and "--- a/-" in result.stdout and f"+        {FIXED_MARK}:" in result.stdout


def test_write_of_stdin_prints_and_writes_no_file(tmp_path):
    result = cli_process("fix", "--write", "-", input=POD.lstrip(), cwd=tmp_path)
    assert FIXED_MARK in result.stdout and result.stdout.startswith("apiVersion: v1")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_odd_file_names_are_quoted_the_way_git_applies_them(tmp_path):
    repo = tmp_path / "repo"
    names = ["new\nline.yaml", 'quote "d" é.yaml', "tab\there.yaml", "with space.yaml"]
    for name in names:
        write(repo, name, POD)
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "base"], check=True)
    result = cli_process("fix", "--diff", ".", cwd=repo)
    assert '--- "a/new\\nline.yaml"' in result.stdout and '"b/quote \\"d\\" \\303\\251.yaml"' in result.stdout
    patch = tmp_path / "fix.diff"
    patch.write_text(result.stdout)
    applied = subprocess.run([*git, "apply", str(patch)], capture_output=True, text=True)
    assert applied.returncode == 0, applied.stderr
    assert all(FIXED_MARK in (repo / name).read_text() for name in names)


# --- 15: UTF-16 ------------------------------------------------------------------------------


@pytest.mark.parametrize("codec, bom", [("utf-16-le", codecs.BOM_UTF16_LE), ("utf-16-be", codecs.BOM_UTF16_BE), ("utf-8", codecs.BOM_UTF8)])
def test_a_file_with_a_byte_order_mark_is_read_and_written_in_its_encoding(tmp_path, cli, codec, bom):
    path = tmp_path / "app" / "pod.yaml"
    path.parent.mkdir()
    path.write_bytes(bom + POD.lstrip().encode(codec))
    code, _, stderr = cli("detect", str(path), "--out", str(tmp_path / "d.json"))
    assert code == 1 and "binary" not in stderr
    cli("fix", "--write", str(path))
    raw = path.read_bytes()
    assert raw.startswith(bom) and FIXED_MARK in raw[len(bom) :].decode(codec)


def test_utf16_without_a_mark_names_the_encoding(tmp_path, cli):
    path = tmp_path / "pod.yaml"
    path.write_bytes(POD.lstrip().encode("utf-16-le"))
    code, _, stderr = cli("detect", str(path), "--out", str(tmp_path / "d.json"))
    assert code == 2 and "UTF-16" in stderr

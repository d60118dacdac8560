"""The README's VisualDL command serves its page to clients that send no Accept-Language header (scripts, some
proxies): VisualDL 2.5.3 under Werkzeug 3.1 answers those with HTTP 500 unless --language names the language."""
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import ROOT

README = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url):
    """(status, body) of a plain GET: urllib sends no Accept-Language header."""
    request = urllib.request.Request(url)
    assert not request.has_header("Accept-language")
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def test_readme_visualdl_command_serves_clients_without_accept_language(tmp_path):
    pytest.importorskip("visualdl")
    from visualdl import LogWriter

    commands = re.findall(r"^visualdl --logdir \S+(.*)$", README, re.M)
    assert commands, "the README shows no visualdl command"
    flags = shlex.split(commands[0])
    assert "--language" in flags, commands[0]
    assert all(shlex.split(c) == flags for c in commands), commands  # every command the README shows
    with LogWriter(logdir=str(tmp_path / "logs")) as writer:
        writer.add_scalar(tag="train/loss", value=0.5, step=1)
    port = _free_port()
    script = os.path.join(os.path.dirname(sys.executable), "visualdl")
    cmd = [script] if os.path.isfile(script) else [sys.executable, "-c", "from visualdl.server.app import main; main()"]
    proc = subprocess.Popen(cmd + ["--logdir", str(tmp_path / "logs"), "--host", "127.0.0.1", "--port", str(port),
                                   *flags], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        status, end = None, time.time() + 60
        while time.time() < end and proc.poll() is None:
            try:
                status, body = _get(f"http://127.0.0.1:{port}/app/index")
                break
            except OSError:  # not listening yet
                time.sleep(0.5)
        assert proc.poll() is None, proc.stdout.read()[-2000:]
        assert status == 200 and "<html" in body.lower(), (status, body[:300])
        status, body = _get(f"http://127.0.0.1:{port}/app/api/tags")
        assert status == 200 and "train%loss" in body, (status, body[:300])  # VisualDL spells / as %
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()

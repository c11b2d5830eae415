"""The Ray job entry points (jobs/*.py) and a real job submission to a real Ray head.

The slow tests start their own Ray head (`ray start --head --block`) with the dashboard/job server
on loopback, in its own --temp-dir, with token authentication and a token file of its own (never
~/.ray/auth_token, which other Ray sessions on the machine use). They stop only that head: SIGTERM
to the `ray start --block` process, which shuts down its children, then any survivor among its
descendants or among processes started from the test's temp dir. Never `ray stop`: it ends every
Ray process of the user on the machine.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STAGES = ("extract", "analyze", "encode", "search", "review", "pipeline")
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


def _run(args, **kw):
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300, **kw)


# ---------------------------------------------------------------------------------------------
# Fast: the scripts themselves


def test_runtime_env_is_valid_and_keeps_uploads_small():
    from ray.runtime_env import RuntimeEnv

    spec = yaml.safe_load((ROOT / "jobs" / "runtime_env.yaml").read_text())
    RuntimeEnv(**spec)  # Ray's own validation of the keys and their types
    assert spec["working_dir"] == "."
    excludes = set(spec["excludes"])
    assert {".venv/", ".git/", "runs/"} <= excludes
    assert not any(e.startswith("samples") for e in excludes), "the demo job reads samples/"


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_has_a_job_script(stage):
    script = ROOT / "jobs" / f"{stage}.py"
    assert script.is_file()
    assert f'run("{stage}")' in script.read_text()


def test_job_help_is_the_cli_help():
    job = _run([sys.executable, "jobs/extract.py", "--help"])
    cli = _run([str(BIN / "genaudio"), "extract", "--help"])
    assert job.returncode == 0 and cli.returncode == 0, job.stderr + cli.stderr
    strip = lambda s: s.split("\n", 1)[1]  # the usage line names the program
    assert job.stdout.startswith("Usage: python jobs/extract.py [OPTIONS]")
    assert strip(job.stdout) == strip(cli.stdout)


def test_job_reports_errors_like_the_cli(tmp_path):
    r = _run([sys.executable, "jobs/extract.py", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and "Traceback" not in r.stderr
    assert "missing" in r.stderr


def _common():
    sys.path.insert(0, str(ROOT / "jobs"))
    try:
        import _common
    finally:
        sys.path.remove(str(ROOT / "jobs"))
    return _common


def test_job_for_a_missing_command_says_so(capsys):
    with pytest.raises(SystemExit) as exc:
        _common().run("no-such-stage", [])
    assert exc.value.code == 2
    assert "no 'no-such-stage' command" in capsys.readouterr().err


def test_relative_out_is_refused_only_inside_a_job(monkeypatch):
    common = _common()
    monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR", raising=False)
    assert common.check_job_outputs(["samples", "--out", "runs/x"]) is None
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR",
                       json.dumps({"metadata": {"job_submission_id": "raysubmit_x"}}))
    assert common.job_submission_id() == "raysubmit_x"
    assert "relative" in common.check_job_outputs(["samples", "--out", "runs/x"])
    assert "relative" in common.check_job_outputs(["samples", "--out=runs/x"])
    assert common.check_job_outputs(["samples", "--out", "/data/runs/x"]) is None
    assert common.check_job_outputs(["samples", "--out", "s3://bucket/x"]) is None
    assert "relative" in common.check_job_outputs(["/data/run", "--report", "review"])


# ---------------------------------------------------------------------------------------------
# Slow: a real Ray head with its job server, and real submissions


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RayHead:
    """A Ray head started by this test, and only this test's processes stopped at the end."""

    ATTEMPTS = 4

    def __init__(self, base: Path):
        import psutil

        self._psutil = psutil
        self.base = base
        self.token_path = base / "auth_token"
        self.token = secrets.token_hex(32)
        self.token_path.write_text(self.token)
        self.token_path.chmod(0o600)
        # Clients (ray job submit) and the head's processes read the token from this file.
        self.client_env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN")}
        self.client_env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(self.token_path),
                               # `python` in a job's entrypoint is this venv's interpreter
                               PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
        self.proc = self.log = None
        # `ray start` gives its raylet a fixed 30 s to register; on a machine loaded by other
        # test runs it can miss that, so a failed start is cleaned up and retried.
        for attempt in range(1, self.ATTEMPTS + 1):
            try:
                self._start(attempt)
                self._wait_ready(timeout=180)
                return
            except BaseException:
                self.stop()
                if attempt == self.ATTEMPTS:
                    raise

    def _start(self, attempt: int):
        self.temp_dir = self.base / f"ray{attempt}"
        self.dashboard_port = _free_port()
        self.address = f"http://127.0.0.1:{self.dashboard_port}"
        # Every port explicit, so that nothing collides with other Ray sessions on the machine.
        ports = {opt: _free_port() for opt in (
            "port", "ray-client-server-port", "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
            "runtime-env-agent-port", "metrics-export-port", "node-manager-port", "object-manager-port")}
        cmd = [str(BIN / "ray"), "start", "--head", "--block", "--num-cpus=2", "--num-gpus=0",
               "--include-dashboard=true", "--dashboard-host=127.0.0.1",
               f"--dashboard-port={self.dashboard_port}", f"--temp-dir={self.temp_dir}",
               "--object-store-memory=500000000", "--disable-usage-stats",
               *(f"--{k}={v}" for k, v in ports.items())]
        self.log_path = self.base / f"head{attempt}.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, env=self.client_env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def _request(self, path: str, token: str | None):
        req = urllib.request.Request(self.address + path)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()

    def _wait_ready(self, timeout: float):
        """Until `ray start` reports the node started (raylet registered) and the job API answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ray start exited {self.proc.returncode}: {self.log_path.read_text()[-3000:]}")
            if "Ray runtime started" in self.log_path.read_text():
                try:
                    if self._request("/api/jobs/", self.token)[0] == 200:
                        return
                except (urllib.error.URLError, ConnectionError, OSError):
                    pass
            time.sleep(1)
        raise TimeoutError(f"the Ray head was not ready within {timeout} s")

    def _ours(self):
        ps = self._psutil
        procs = []
        try:
            procs = [ps.Process(self.proc.pid), *ps.Process(self.proc.pid).children(recursive=True)]
        except ps.NoSuchProcess:
            pass
        # Processes orphaned from the tree (if `ray start` died) still name our temp dir.
        marker = str(self.base) + os.sep
        for p in ps.process_iter(["cmdline"]):
            try:
                if p.pid not in {q.pid for q in procs} and any(marker in a for a in (p.info["cmdline"] or ())):
                    procs.append(p)
            except ps.Error:
                pass
        return procs

    def stop(self):
        ps = self._psutil
        procs = self._ours()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # `ray start --block` shuts its children down
        _, alive = ps.wait_procs(procs, timeout=5)
        for p in alive:  # some of them wait for their parent's shutdown long after it asked
            try:
                p.terminate()
            except ps.NoSuchProcess:
                pass
        _, alive = ps.wait_procs(alive, timeout=5)
        for p in alive:
            try:
                p.kill()
            except ps.NoSuchProcess:
                pass
        ps.wait_procs(alive, timeout=10)
        if self.log is not None:
            self.log.close()
        return alive


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    # A short base path: Ray's socket paths under --temp-dir must stay below 107 characters.
    base = Path(tmp_path_factory.mktemp("head", numbered=True))
    head = RayHead(base)
    yield head
    head.stop()
    assert not [p for p in head._ours() if p.is_running()], "processes of the test's Ray head survived"


def _samples_ready():
    return any(p.suffix.lower() in {".wav", ".flac", ".ogg", ".mp3"} for p in (ROOT / "samples").rglob("*"))


def _check_store(out: Path, n_files: int):
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "features"
    assert manifest["counts"]["files_ok"] + manifest["counts"]["files_failed"] == n_files
    assert manifest["counts"]["files_ok"] > 0
    segments = sorted((out / "segments").glob("*.parquet"))
    assert segments
    import pyarrow.parquet as pq

    rows = sum(pq.read_metadata(p).num_rows for p in segments)
    assert rows == manifest["counts"]["segments"] > 0
    return manifest


@pytest.mark.slow
def test_head_refuses_requests_without_the_token(ray_head):
    with pytest.raises(urllib.error.HTTPError) as exc:
        ray_head._request("/api/jobs/", None)
    assert exc.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as exc:
        ray_head._request("/api/jobs/", "not-the-token")
    assert exc.value.code == 403


@pytest.mark.slow
def test_job_refuses_a_relative_output_path(ray_head):
    """Submitted with the CLI, the address from RAY_API_SERVER_ADDRESS as docs/cluster.md does it;
    the wrapper's own check fails the job before any work."""
    env = dict(ray_head.client_env, RAY_API_SERVER_ADDRESS=ray_head.address)
    r = _run([str(BIN / "ray"), "job", "submit",
              "--runtime-env", "jobs/runtime_env.yaml", "--working-dir", ".", "--",
              "python", "jobs/extract.py", "samples", "--out", "runs/relative"], env=env)
    assert r.returncode != 0
    assert "is relative" in r.stdout + r.stderr
    assert "failed" in (r.stdout + r.stderr).lower()


@pytest.mark.slow
def test_submit_extract_with_ray_job_submit(ray_head):
    # two files (mp3 + wav) of the uploaded samples/ and two features: the job's wiring, not the
    # extraction, is tested
    out = ray_head.base / "store_cli"
    r = _run([str(BIN / "ray"), "job", "submit", "--address", ray_head.address,
              "--runtime-env", "jobs/runtime_env.yaml", "--working-dir", ".", "--",
              "python", "jobs/extract.py", "samples/piano", "--features", "rms,mfcc", "--out", str(out)],
             env=ray_head.client_env)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    assert "succeeded" in r.stdout + r.stderr
    _check_store(out, 2)


@pytest.mark.slow
def test_submit_extract_with_job_submission_client(ray_head):
    from ray.job_submission import JobStatus, JobSubmissionClient

    spec = yaml.safe_load((ROOT / "jobs" / "runtime_env.yaml").read_text())
    spec["working_dir"] = str(ROOT)
    out = ray_head.base / "store_sdk"
    # The token as an explicit header: this process may already hold another cluster's token.
    client = JobSubmissionClient(ray_head.address, headers={"Authorization": f"Bearer {ray_head.token}"})
    job_id = client.submit_job(entrypoint=f"python jobs/extract.py samples/bells --features rms,mfcc --out {out}",
                               runtime_env=spec)
    deadline = time.monotonic() + 600
    while (status := client.get_job_status(job_id)) not in TERMINAL and time.monotonic() < deadline:
        time.sleep(2)
    logs = client.get_job_logs(job_id)
    assert status == JobStatus.SUCCEEDED, logs[-4000:]
    assert f"[jobs/extract.py] Ray job {job_id}" in logs  # the driver ran inside the job...
    assert "working_dir_files" in logs                     # ...in the uploaded copy of the repo
    manifest = _check_store(out, 2)   # samples/bells: an mp3 and a flac
    info = client.get_job_info(job_id)
    assert info.entrypoint.startswith("python jobs/extract.py")
    assert manifest["counts"]["files_ok"] > 0

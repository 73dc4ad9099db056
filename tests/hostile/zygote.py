"""Run the ``miaudit`` command many times without paying its start-up each time.

Importing miaudit's training stack takes seconds (torch), and the crash and hostile-input
suites run the command dozens of times. This script imports the command once, then forks a
fresh child for each request: the child runs ``miaudit.cli.main()`` with its own argv, cwd,
environment, stdout and stderr, exactly as ``miaudit ...`` would after start-up, and exits
with the command's exit code. The parent never trains or writes anything, so every child
starts from the same clean state. A test in test_crash.py checks that a forked run gives the
same bytes as a plain ``python -m miaudit.cli`` run.

For crash tests a child can be killed with SIGKILL, either by the parent after a delay (from
outside, at an arbitrary point) or by itself at the k-th file write (mid-write, before the
rename, or just after it), and it can trace its stages and writes to a file with timestamps.

Protocol: one JSON request per line on stdin, one JSON answer per line on stdout.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

# -- the client, used by the tests ---------------------------------------------------------


class Zygote:
    """A running zygote process (start once per test module; close at the end)."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "COLUMNS": "200", **(env or {})},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"zygote failed to start: {line} {self.proc.stderr.read()}")  # type: ignore[union-attr]

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("zygote died")
        return json.loads(line)

    def start(
        self,
        argv: list[str],
        *,
        cwd: Path,
        logs: Path,
        env: dict[str, str] | None = None,
        kill_at: float | None = None,
        kill_after: dict[str, Any] | None = None,
        crash: dict[str, Any] | None = None,
        trace: Path | None = None,
        background: bool = False,
        timeout: float = 300.0,
    ) -> Result:
        """Run ``miaudit *argv``; with ``background`` return at once (see :meth:`wait`).

        ``kill_at`` (seconds after start) or ``kill_after`` ({"stage": name, "delay": s},
        which needs ``trace``) make the zygote SIGKILL the child from outside; ``crash``
        ({"write": k, "phase": ...}) makes the child kill or pause itself at its k-th write.
        """
        answer = self._ask(
            {
                "op": "run",
                "argv": argv,
                "cwd": str(cwd),
                "env": env or {},
                "stdout": str(logs.with_suffix(".out")),
                "stderr": str(logs.with_suffix(".err")),
                "kill_at": kill_at,
                "kill_after": kill_after,
                "crash": crash,
                "trace": str(trace) if trace else None,
                "background": background,
                "timeout": timeout,
            }
        )
        return Result(answer, logs)

    def wait(self, result: Result, timeout: float = 300.0) -> Result:
        return Result(self._ask({"op": "wait", "pid": result.pid, "timeout": timeout}), result.logs)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Result:
    """Exit status and output of one command run through the zygote."""

    def __init__(self, answer: dict[str, Any], logs: Path) -> None:
        self.pid: int = answer["pid"]
        self.returncode: int | None = answer.get("returncode")
        self.killed: bool = answer.get("signal") == signal.SIGKILL
        self.elapsed: float = answer.get("elapsed", 0.0)
        self.logs = logs

    @property
    def stdout(self) -> str:
        return self.logs.with_suffix(".out").read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.logs.with_suffix(".err").read_text(errors="replace")


def read_trace(path: Path) -> list[tuple[float, str, str]]:
    """(seconds since start, kind, detail) events a traced child wrote before it ended."""
    if not path.is_file():
        return []
    events = []
    for line in path.read_text().splitlines():
        t, kind, detail = line.split("\t", 2)
        events.append((float(t), kind, detail))
    return events


# -- the server ----------------------------------------------------------------------------


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _install_hooks(request: dict[str, Any]) -> None:
    import miaudit.cli as cli
    import miaudit.results.store as store

    trace = request.get("trace")
    crash = request.get("crash") or {}
    t0 = time.monotonic()
    fd = os.open(trace, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600) if trace else None

    def note(kind: str, detail: str) -> None:
        if fd is not None:
            os.write(fd, f"{time.monotonic() - t0:.6f}\t{kind}\t{detail}\n".encode())

    original_stage = cli._RichProgress.stage

    def stage(self: Any, name: str, total: int | None = None) -> None:
        note("stage", name)
        original_stage(self, name, total)

    cli._RichProgress.stage = stage  # type: ignore[method-assign]

    original_write = store.atomic_write
    count = [0]

    def atomic_write(path: Path, write: Any) -> None:
        k = count[0]
        count[0] += 1
        path = Path(path)
        name = f"{path.parent.name}/{path.name}"
        note("write", f"{k} {name}")
        if crash.get("write") == k:
            phase = crash.get("phase", "mid")
            if phase == "mid":

                def partial(f: Any) -> None:
                    buffer = io.BytesIO()
                    write(buffer)
                    data = buffer.getvalue()
                    f.write(data[: max(1, len(data) // 2)])
                    f.flush()
                    os.fsync(f.fileno())
                    note("kill", f"mid-write {name}")
                    _die()

                original_write(path, partial)
            elif phase == "before_rename":

                def whole(f: Any) -> None:
                    write(f)
                    f.flush()
                    os.fsync(f.fileno())
                    note("kill", f"before rename {name}")
                    _die()

                original_write(path, whole)
            elif phase == "pause":  # hold the run (and its lock) for a while, then go on
                original_write(path, write)
                note("pause", name)
                time.sleep(float(crash.get("seconds", 1.0)))
                note("written", f"{k} {name}")
                return
            else:
                original_write(path, write)
                note("kill", f"after rename {name}")
                _die()
        original_write(path, write)
        note("written", f"{k} {name}")

    store.atomic_write = atomic_write  # type: ignore[assignment]


def _child(request: dict[str, Any]) -> None:
    code = 1
    try:
        os.chdir(request["cwd"])
        os.environ.update(request["env"])
        for name, target in (("stdout", 1), ("stderr", 2)):
            fd = os.open(request[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(fd, target)
            os.close(fd)
        sys.stdin = open(os.devnull)
        sys.argv = ["miaudit", *request["argv"]]
        if request.get("trace") or request.get("crash"):
            _install_hooks(request)
        import miaudit.cli

        try:
            miaudit.cli.main()
            code = 0
        except SystemExit as exit_:
            if exit_.code is None:
                code = 0
            elif isinstance(exit_.code, int):
                code = exit_.code
            else:
                print(exit_.code, file=sys.stderr)
                code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


class _KillClock:
    """When to SIGKILL a child: ``kill_at`` seconds after the fork, or ``kill_after`` =
    {stage, delay} seconds after the parent sees the child's trace announce that stage."""

    def __init__(self, request: dict[str, Any], started: float) -> None:
        self.at = None if request.get("kill_at") is None else started + request["kill_at"]
        self.after = request.get("kill_after")
        self.trace = request.get("trace")
        self.text = ""

    @property
    def active(self) -> bool:
        return self.at is not None or bool(self.after)

    def due(self, now: float) -> bool:
        if self.at is None and self.after and self.trace:
            with contextlib.suppress(FileNotFoundError), open(self.trace) as f:
                self.text = f.read()
            if f"\tstage\t{self.after['stage']}\n" in self.text:
                self.at = now + float(self.after["delay"])
        return self.at is not None and now >= self.at


def _reap(pid: int, request: dict[str, Any], started: float) -> dict[str, Any]:
    timeout = float(request.get("timeout", 300.0))
    clock = _KillClock(request, started)
    killed_by_parent = False
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        now = time.monotonic()
        if not killed_by_parent and clock.active and clock.due(now):
            os.kill(pid, signal.SIGKILL)
            killed_by_parent = True
        if now - started > timeout:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            break
        time.sleep(0.0005 if clock.active and not killed_by_parent else 0.005)
    answer: dict[str, Any] = {"pid": pid, "elapsed": time.monotonic() - started}
    if os.WIFSIGNALED(status):
        answer["signal"] = os.WTERMSIG(status)
        answer["returncode"] = -os.WTERMSIG(status)
    else:
        answer["returncode"] = os.WEXITSTATUS(status)
    return answer


def serve() -> None:
    import pyarrow.parquet  # noqa: F401  (pandas imports it lazily on the first write)

    import miaudit.audit
    import miaudit.cli
    import miaudit.report
    import miaudit.report.charts  # matplotlib: seconds to import, once here, not per child
    import miaudit.results.store
    import miaudit.results.write

    del miaudit
    print("ready", flush=True)
    started: dict[int, tuple[float, dict[str, Any]]] = {}
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "wait":
            t0, req = started.pop(request["pid"])
            answer = _reap(request["pid"], {**req, "timeout": request["timeout"]}, t0)
        else:
            sys.stdout.flush()
            t0 = time.monotonic()
            pid = os.fork()
            if pid == 0:
                _child(request)
            if request.get("background"):
                started[pid] = (t0, request)
                answer = {"pid": pid}
            else:
                answer = _reap(pid, request, t0)
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    serve()

"""A reused worker: one long-lived process that runs compiled SDK steps one after another.

The opt-in fast path for SDK Python steps (``PythonExecutor(reuse=True)``,
``CHUTE_WARM_STEPS=reuse``, or ``@component(reuse_worker=True)``), as Celery or Ray workers
run tasks: no fork, no supervisor, no step files but the log and the outputs. Started by
:class:`chute.executors.worker_pool.WorkerPool` as ``python -m
chute.executors.reused_worker MODULE...``, it imports the modules
(:func:`chute.executors.warm_worker.preload`), runs chute's step runtime once
(:mod:`chute.executors.warm_runtime`), says ready, then serves requests on its stdin, one
JSON object a line, each answered on its stdout (a dup of the original: fds 0-2 are the
steps')::

    request  {"spec": <LaunchSpec JSON less script_source>, "source_id": N,
              "source": "..." (the first time this worker sees N), "env": {...} (the
              controller's environment, when it changed), "last": true (retire after)}
    reply    {"step_dir": ..., "exit_code": N, "started_at": T, "finished_at": T,
              "result": "...", "outputs": {...}, "cpu": s, "retiring": "why" or absent,
              "tmp": "..." (a new private /tmp's directory, for the pool to remove)}
             or {"step_dir": ..., "error": "..."} (the step could not be started)

(``"cpu"``: this process's CPU seconds since its previous reply: the step's, and putting
the process back and getting ready after the previous one.)

A step gets what a process step gets (:mod:`chute.executors.supervisor`): its log lines
``<RFC 3339 UTC> <stdout|stderr> <text>`` in ``log_path`` as they come
(:class:`~chute.executors.logsink.LogSink`, secrets masked) — fds 1 and 2 of this process
are pipes read by one pump thread, so a subprocess's output and C code's reach the log
too; ``sys.std*`` new for each step; the controller's environment at launch plus the
step's ``env``; ``sys.argv``, ``sys.path[0]``, a fresh ``__main__``; working directory
``working_dir`` (default the step directory); exit code of ``SystemExit``, an uncaught
exception's traceback on stderr and 1; a private ``/tmp``, empty at its start: this
process made its own mount namespace at start and binds a scratch directory over
``/tmp`` once (:mod:`chute.executors.worker_tmp`: host paths under ``/tmp`` the step is
handed are bound back in for that step, or across steps where the controller's
environment names them: :mod:`chute.executors.steady_binds`); after the step what it
left there is moved to ``step_dir/root/tmp``, so the outputs are where a process step
leaves them. Unlike a
process step without private paths (which sees the host's), every step here gets the
private ``/tmp``, as in its container. A step whose private paths
need more than that (another top, volumes, a new root) never comes here: the pool sends
it to the fork path (:func:`chute.executors.worker_pool.eligible`).

After each step everything it could change in this process is put back (environment,
working directory, ``sys.argv``/``sys.path``/``sys.std*``/``__main__``, ``excepthook``,
recursion limit, umask, warning filters, signal handlers and mask). What decides the
reply is done before it (the outputs moved, the log closed, whether the worker retires);
the rest — putting back what a step may change without harm, fresh random state, the
next step's ``__main__`` and directory made ahead — right after it, while the controller
takes the reply, before the next request is read: a step waits only for its own part.
What cannot be put back retires the worker (it replies ``"retiring"`` and exits; the pool
starts another for the next step): a thread it started (non-daemon ones are joined first,
as at interpreter exit), a child process still alive (killed, as a container's end kills
them), an ``atexit`` handler registered (all of them are run, as at exit), a signal handler
(through ``signal.signal``), mask or timer it set, fds 0-2 closed or replaced, a
non-zero exit or an uncaught exception, a private ``/tmp`` that could not be emptied or
unbound, or the pool's ``max_steps``.

Known differences from the fork path (documented for users of ``reuse_worker``):

* modules a step imported stay imported for the next steps of this worker, and module
  state a step changed (``json.x = 1``) is seen by them: only steps that succeed and leave
  nothing behind are followed by another in the same process;
* interpreter options read at start-up from the environment (``PYTHONPATH``,
  ``PYTHONHASHSEED``, ``-X`` options) are the worker's, as for zygotes;
* chute's runtime classes and functions (``Dataset``, ``_chute_main``...) are shared by
  the steps of a worker (each ``__main__`` is fresh, their globals are the runtime's);
* ``step_dir/script`` is not written (the source is registered in :mod:`linecache`, so a
  traceback shows its lines); no ``launch.json``, ``supervisor.pid``, ``step.pid`` or
  ``status.json``: a worker dies with its controller (its stdin closes: the pump thread
  kills it and its children), and a restarted controller finds nothing to re-attach to
  and runs the step again (at-least-once across a controller crash);
* a step killed by its deadline or a cancel takes the worker with it: output it wrote in
  the last instant before the kill may be missing from the log;
* the log file is made with the step's first line (a step that prints nothing has none;
  every reader of logs takes a missing file as an empty log);
* the step's code is compiled once per worker under the name ``<chute step runtime>``
  (renaming it for each step's script path costs more than the rest of a no-op step):
  the step's own report of an uncaught exception names the script, as a process step's
  does, but ``f.__code__.co_filename`` and warnings show that name.
"""

from __future__ import annotations

import atexit
import builtins
import fcntl
import gc
import io
import json
import linecache
import os
import random
import signal
import sys
import threading
import time
import types

from chute.executors import (
    mounts,
    proctree,
    sandbox,
    stepfiles,
    warm_runtime,
    warm_step,
    warm_worker,
)
from chute.executors import worker_reset as reset
from chute.executors.steady_binds import env_dirs
from chute.executors.tmp_paths import named_in, tmp_paths
from chute.executors.worker_io import LazyLog, Pump, fresh_stdio
from chute.executors.worker_tmp import PrivateTmp

# the file name steps' code is compiled under, once per source (renaming it to each step's
# script costs ~50 us a step): an uncaught exception's report names the script there
CODE_NAME = warm_runtime.FILENAME


class Worker(reset.ProcessState):
    """This process's state between steps, and how it runs one (:meth:`run`)."""

    def __init__(self, pump: Pump, home: str, tmp: PrivateTmp) -> None:
        self.pump = pump
        self.home = home
        self.tmp = tmp
        self.sources: dict[int, tuple[str, list[str], tuple | None]] = {}
        self.base_env: dict[str, str] = dict(os.environ)
        self.base_data = dict(os.environ._data)  # type: ignore[attr-defined]
        # paths under /tmp the environment names (a step may be handed a host path there)
        self.env_paths = tmp_paths([sys.executable, *self.base_env.values()])
        self.env_dirs = env_dirs(self.env_paths)  # what of them may be held across steps
        self.stdio_cache: dict[tuple[str, bool], tuple] = {}
        self.last_stdio: tuple = (None, None, None)  # the last step's (from the cache)
        self.step_env: dict[str, str] = {}  # the last step's own variables (to put back)
        self.main_ahead: types.ModuleType | None = None  # the next step's __main__
        self.broken: str | None = None  # putting the process back failed: retire
        self.baseline()
        self.prepare()

    # -- requests

    def handle(self, req: dict) -> dict:
        """Run the requested step; the reply."""
        spec = req["spec"]
        if "source" in req:  # kept for the worker's life (max_steps bounds it): the pool
            source = req["source"]  # sends each source once to each worker
            entry = warm_worker._compile(source.encode(), CODE_NAME)
            self.sources[req["source_id"]] = (source, source.splitlines(True), entry)
        if "env" in req:
            self._set_base_env(req["env"])
        if req.get("source_id") not in self.sources:
            return {"step_dir": spec["step_dir"], "error": "reused worker: unknown source",
                    "retiring": "protocol error"}
        source, lines, entry = self.sources[req["source_id"]]
        if self.broken:
            return {"step_dir": spec["step_dir"], "retiring": "worker error",
                    "error": f"reused worker failed: {self.broken}"}
        try:
            return self.run(spec, source, lines, entry, bool(req.get("last")))
        except Exception as e:  # noqa: BLE001 - ours, not the step's: an ERROR, and retire
            return {"step_dir": spec["step_dir"], "error": f"reused worker failed: "
                    f"{type(e).__name__}: {e}", "retiring": "worker error"}

    def _set_base_env(self, env: dict[str, str]) -> None:
        self.base_env = env
        os.environ.clear()
        os.environ.update(env)
        self.base_data = dict(os.environ._data)  # type: ignore[attr-defined]
        self.env_paths = tmp_paths([sys.executable, *env.values()])
        self.env_dirs = env_dirs(self.env_paths)

    # -- one step

    def run(self, spec: dict, source: str, lines: list[str], entry, last: bool) -> dict:
        tmp = self.tmp
        sd = spec["step_dir"]
        hsd = tmp.host(sd)  # the step directory, as this process reaches it
        script = sd + "/script"
        step_env = self.step_env = spec.get("env") or {}
        near = tmp.make_step_dir(hsd)
        reply: dict = {"step_dir": sd}
        try:
            made = tmp.ensure(sd, near)
        except OSError as e:
            return {**reply, "error": f"reused worker: no private /tmp: {e}",
                    "retiring": "no private /tmp"}
        if made:
            reply["tmp"] = made  # the pool removes it when this worker is gone
        secrets = spec.get("secret_values")
        sink = LazyLog(tmp.host(spec["log_path"]), hsd + "/stdout", secrets or ())
        try:
            if self.env_dirs or tmp.held:  # (before the inputs are placed: not on the host)
                tmp.hold(tmp.wanted(self._env_dirs(step_env), _private(spec)))
            if spec.get("input_files"):
                tmp.place(spec["input_files"])
            kept = tmp.kept
            if sd.startswith("/tmp/") and not (kept and sd.startswith(kept) and sd.rfind(
                    "/") == len(kept)):  # (temporary directories: a run's first step)
                tmp.keep(sd, _private(spec))
            if tmp.handed((sd, spec.get("working_dir") or "", source, *step_env.values()),
                          self.env_paths):
                tmp.expose(self._exposed(spec, source, {**self.base_env, **step_env},
                                         script))
        except OSError as e:
            sink.close()
            reply["error"] = f"could not prepare step files: {e}"
            if not self._clear(None):
                reply["retiring"] = "private /tmp"
            return reply
        retiring = "last step" if last else None
        started = time.time()
        pump = self.pump
        with pump.lock:
            pump.sink = sink
        for k, v in step_env.items():
            os.environ[k] = v
        code = self._run_step(spec, script, source, lines, entry, step_env)
        why = self._check()
        retiring = retiring or why or (f"exit code {code}" if code else None)
        # what the step left in /tmp goes to step_dir/root/tmp: its outputs are then where
        # a process step's are (Plan.host_path), and the next step's /tmp is empty
        if not self._clear(hsd + "/root"):
            retiring = retiring or "private /tmp"
        outputs = {p: f"{sd}/root{p}" for p in spec.get("output_paths") or ()
                   if os.path.lexists(f"{hsd}/root{p}")}
        sink.end()
        if secrets:
            # what the controller does after a process step from its launch.json (which a
            # reused step has not): no file of the step directory keeps a secret
            stepfiles.scrub_step_dir(hsd, secrets)
        reply.update(exit_code=code, started_at=started, finished_at=time.time(),
                     result=sink.result(), outputs=outputs)
        if retiring:
            reply["retiring"] = retiring
        return reply

    def _env_dirs(self, step_env: dict[str, str]) -> tuple[str, ...]:
        """The paths under ``/tmp`` that the step's environment names (the
        worker's, unless the step's own variables replace one that named them)."""
        dirs = self.env_dirs
        if step_env and dirs and any(named_in(self.base_env.get(k, "")) for k in step_env):
            dirs = env_dirs(tmp_paths([sys.executable, *{**self.base_env,
                                                          **step_env}.values()]))
        return dirs

    def _exposed(self, spec: dict, source: str, env: dict[str, str], script: str) -> list[str]:
        """Host paths under /tmp the step is handed, bound into its /tmp (every step gets
        the private /tmp, as in its container: ``sandbox``'s rules for what to re-share)."""
        plan = sandbox.plan_for(
            {**spec, "script_source": source,
             "private_paths": [*(spec.get("private_paths") or []), "/tmp"]},
            env, [sys.executable, script], enabled=True, reach=self.tmp.host)
        if plan.private_tops != ["tmp"] or plan.overlays or plan.volumes:  # (eligible())
            raise OSError(f"private paths outside /tmp: {plan.private_tops}")
        return plan.expose

    def _clear(self, root: str | None) -> bool:
        """After a step: unbind what it was handed, then empty its /tmp into ``root``
        (None: drop it). False if that failed: the worker then retires."""
        ok = self.tmp.unexpose()
        try:
            self.tmp.empty(root)
        except OSError:
            return False
        return ok

    def _run_step(self, spec, script, source, lines, entry, step_env) -> int:
        """Become the step, run it, end it as the interpreter would; its exit code."""
        cwd = spec.get("working_dir") or spec["step_dir"]
        try:
            if cwd != spec["step_dir"]:  # which exists
                os.makedirs(cwd, exist_ok=True)
            os.chdir(cwd)
        except OSError as e:
            os.write(2, f"chute: could not start step: {e}\n".encode())
            return self._finish(127)
        sys.argv = [script]
        sys.path.insert(0, spec["step_dir"])  # (the script's directory)
        base = self.base_env  # (os.environ's lookups cost more than these)
        enc = step_env.get("PYTHONIOENCODING", base.get("PYTHONIOENCODING", ""))
        stdio = self._stdio(enc.split(":")[0] or "utf-8", bool(step_env.get(
            "PYTHONUNBUFFERED", base.get("PYTHONUNBUFFERED"))))
        sys.stdin, sys.stdout, sys.stderr = sys.__stdin__, sys.__stdout__, sys.__stderr__ = stdio
        linecache.cache[script] = (len(source), None, lines, script)
        code, in_template = entry if entry is not None else (None, False)
        main, self.main_ahead = self.main_ahead, None  # (random state: prepare())
        if main is None or not in_template:
            main = _new_main(in_template)
        main.__file__ = script
        sys.modules["__main__"] = main
        try:
            if code is None:  # it does not compile: say where, as python would
                try:
                    compile(source, script, "exec", dont_inherit=True)
                except (SyntaxError, ValueError) as e:
                    import traceback

                    sys.stderr.write("".join(traceback.format_exception_only(e)))
                    return self._finish(1)
            exec(code, main.__dict__)  # noqa: S102 - the step's own program, as `python script`
            status = 0
        except SystemExit as e:
            status = warm_step.exit_code(e)
        except BaseException as e:  # noqa: BLE001 - as the interpreter: traceback, exit 1
            tb = warm_step.user_frames(e.__traceback__, CODE_NAME)
            warm_step.report(e.with_traceback(tb), script, True)  # CODE_NAME -> script
            status = 1
        finally:
            linecache.cache.pop(script, None)
        return self._finish(status)

    def _stdio(self, enc: str, unbuffered: bool) -> tuple:
        """sys.stdin/stdout/stderr for a step: as a fresh interpreter's on these fds; the
        last step's objects again if it left them intact (making them costs ~20 us)."""
        key = (enc, unbuffered)
        stdio = self.stdio_cache.get(key)
        if stdio is None or stdio[0].closed or stdio[1].closed or stdio[2].closed or not (
                type(stdio[0]) is type(stdio[1]) is type(stdio[2]) is io.TextIOWrapper):
            if len(self.stdio_cache) >= 4:
                self.stdio_cache.clear()
            stdio = self.stdio_cache[key] = fresh_stdio(enc, unbuffered)
        elif stdio[1].line_buffering or stdio[1].write_through != unbuffered:
            # (as new, block-buffered: done after the last step, see _restore())
            stdio[1].reconfigure(line_buffering=False, write_through=unbuffered)
        self.last_stdio = stdio
        return stdio

    def _finish(self, code: int) -> int:
        """Interpreter shutdown, in its order: join threads, atexit, flush; then kill what
        is left (as a container's end) and feed the last output to the log."""
        self.left = []
        # (the worker's own threads never end: as many threads means no new one)
        if threading.active_count() != self.nthreads:
            for t in threading.enumerate():
                if t.ident not in self.threads:
                    self.left.append(t.name)
                    if not t.daemon:
                        t.join()
        if atexit._ncallbacks() != self.atexit:
            self.left.append("atexit")
            atexit._run_exitfuncs()
        code = warm_step.flush_stdio(code)
        if reset.children_left():
            self.left.append("child processes")
            reset.kill_children()
        try:
            if [os.fstat(fd).st_ino for fd in self.fds] != self.stdfds:
                self.left.append("fds 0-2 or the worker's replaced")
        except OSError:
            self.left.append("fds 0-2 or the worker's closed")
        self.pump.drain()
        with self.pump.lock:
            self.pump.sink = None
        return code

    def after(self) -> None:
        """After the reply, before the next request: put the rest back as
        :meth:`baseline` found it, and get ready for the next step (:meth:`prepare`).
        A failure retires the worker at its next request."""
        try:
            self._restore(self.step_env)
            self.prepare()
        except Exception as e:  # noqa: BLE001 - ours: the next request is told
            self.broken = f"{type(e).__name__}: {e}"

    def prepare(self) -> None:
        """Ready the next step: fresh random state (as at a fork: ``random``'s reseed
        alone costs ~15 us), its ``__main__`` and its step directory (:meth:`PrivateTmp.
        make_ahead`), made now that no step sees them."""
        random.seed(int.from_bytes(os.urandom(16), "little"))
        warm_step.reseed()
        self.main_ahead = _new_main(True)
        self.tmp.make_ahead()
        self.tmp.tidy()
        reset.collect_ahead()


def _private(spec: dict) -> list[str]:
    """The step's private paths: its own, its inputs' and its outputs'."""
    return [*(spec.get("private_paths") or []), *(spec.get("input_files") or {}),
            *(spec.get("output_paths") or [])]


def _new_main(in_template: bool) -> types.ModuleType:
    """A fresh ``__main__`` for a step (``in_template``: its code is the part after the
    runtime: the runtime's namespace in it, as after running it); ``__file__`` unset."""
    main = types.ModuleType("__main__")
    template = warm_runtime.TEMPLATE
    if in_template and template is not None:
        main.__dict__.update(template.module.__dict__)
    main.__dict__.update(__file__=None, __cached__=None, __loader__=None, __package__=None,
                         __spec__=None, __builtins__=builtins)
    return main


def _send(fd: int, data: bytes) -> None:
    """Write a line of the protocol (a reply with a long result may take more than one
    write; no buffered file object: one syscall in the usual case)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def main(modules: list[str]) -> None:
    """Entry point: private mount namespace, imports, runtime, ready; then serve."""
    req_fd, out_fd = os.dup(0), os.dup(1)  # the protocol's (not inherited by steps)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.close(null)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the controller's to handle
    proctree.become_subreaper()  # a step's orphans stay ours: found and killed after it
    namespace = tmp = None
    try:
        mounts.unshare_private()  # before any thread: a user namespace needs one thread
        tmp = PrivateTmp()  # (the host's /tmp held before anything is mounted over it)
    except OSError as e:
        namespace = str(e)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    os.close(out_w)
    os.close(err_w)
    for fd in (out_r, err_r):
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
    pump = Pump(out_r, err_r, req_fd)
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]  # as for `python script`: the controller's directory is not the step's
    done = warm_worker.preload(modules)
    warm_runtime.load()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as a fresh interpreter
    reset.track_signals()
    os.chdir("/")
    worker = Worker(pump, "/", tmp or PrivateTmp())
    ready = {"ready": True, "pid": os.getpid(), "modules": done, "namespace": namespace}
    _send(out_fd, json.dumps(ready).encode() + b"\n")
    gc.collect()
    gc.freeze()  # the collector then never walks what the imports made
    requests = os.fdopen(req_fd, "rb")
    cpu = time.process_time()
    for line in requests:
        # (a str: json.loads decodes bytes with an error handler, ~6 us slower)
        reply = worker.handle(json.loads(line.decode()))
        now = time.process_time()
        reply["cpu"] = round(now - cpu, 6)
        cpu = now
        _send(out_fd, json.dumps(reply).encode() + b"\n")
        if reply.get("retiring"):
            break
        worker.after()  # (its CPU is the next reply's)
    reset.kill_children()
    # (the private /tmp's directory is the pool's to remove once we are gone: an unmount
    # here would only delay the exit; the namespace goes with this process)
    os._exit(0)  # no interpreter shutdown: atexit handlers were the steps' and are run


if __name__ == "__main__":
    main(sys.argv[1:])

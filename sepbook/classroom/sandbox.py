"""A submission walled in: its cells run in a process of their own, which then answers calls.

The grader (:mod:`sepbook.classroom.grade`) starts ``python -m sepbook.classroom.sandbox REQUESTS REPLIES`` with two
pipes. The process runs the notebook cells it is sent, then calls the student's functions on the
inputs the grader sends and sends back what they returned, as data: tensors, numbers and text,
which the grader reads with ``torch.load(weights_only=True)``. The checker, the reference
implementation and the marks stay in the grader's process, which never runs student code.

Where bubblewrap (``bwrap``) is installed, the process sees a read-only system, the Python
environment, the package and its own throw-away folder, and nothing else: no network, no other
submission, no teacher's file. Run as root, it drops to the unprivileged ``nobody``. Limits on
memory, processes, file size and CPU time apply in every case.

Chapter: for teachers
"""
from __future__ import annotations

import io
import os
import resource
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

#: What one submission may use. Processes count threads too, and are counted per user.
LIMITS = {"memory_bytes": 8 << 30, "file_bytes": 64 << 20, "processes": 256}
NOBODY = 65534
#: Where the throw-away folder appears inside the wall.
INSIDE = "/submission"
_HEADER = struct.Struct("<Q")
_MAX_REPLY = 256 << 20


# ----------------------------------------------------------------------------- the wire


def send(fd: int, message: Any) -> None:
    """Write ``message`` to ``fd`` as ``torch.save`` bytes behind their length."""
    buffer = io.BytesIO()
    torch.save(message, buffer)
    data = buffer.getvalue()
    os.write(fd, _HEADER.pack(len(data)))
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def read_exactly(fd: int, size: int, wait=lambda: None) -> bytes:
    """``size`` bytes from ``fd``; ``wait()`` runs before each read (and may raise to give up)."""
    chunks, left = [], size
    while left:
        wait()
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError("the other side closed the pipe")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def receive(fd: int, trusted: bool, wait=lambda: None) -> Any:
    """One message from ``fd``. Only the grader's messages are ``trusted`` (they may hold modules);
    the submission's are read as data alone."""
    (size,) = _HEADER.unpack(read_exactly(fd, _HEADER.size, wait))
    if size > _MAX_REPLY:
        raise ValueError(f"a reply of {size} bytes, more than the {_MAX_REPLY} allowed")
    return torch.load(io.BytesIO(read_exactly(fd, size, wait)), weights_only=not trusted)


# ----------------------------------------------------------------------------- inside the wall


def as_data(value: Any) -> Any:
    """What a student's function returned, as data the grader can load without running code."""
    if torch.is_tensor(value):
        return value.detach().cpu()
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, np.ndarray) and value.dtype != object:
        return {"numpy": torch.as_tensor(value)}
    return {"type": type(value).__name__}


def module_state(module: torch.nn.Module) -> dict:
    """Which parameters learn and what gradient each holds, after the student's function ran."""
    named = dict(module.named_parameters())
    return {"requires_grad": {name: p.requires_grad for name, p in named.items()},
            "grad": {name: None if p.grad is None else p.grad.detach() for name, p in named.items()}}


def call(namespace: dict, request: dict) -> dict:
    """Call the student's function named in ``request`` on its arguments; -> the reply.

    The reply holds the value, each module argument's state afterwards and, when the value
    carries a gradient, the gradient of its sum with respect to every argument that learns.
    """
    name = request["function"]
    function = namespace.get(name)
    if not callable(function):
        return {"missing": f"{name} is not defined: the cell that defines it did not run to the end"}
    args = list(request["args"])
    for index in request["learns"]:
        args[index] = args[index].requires_grad_(True)
    try:
        value = function(*args)
    except Exception as error:
        return {"raised": type(error).__name__, "message": str(error)[:2000]}
    modules = {i: a for i, a in enumerate(args) if isinstance(a, torch.nn.Module)}
    reply = {"value": as_data(value), "modules": {i: module_state(m) for i, m in modules.items()}}
    if torch.is_tensor(value) and value.requires_grad:
        inputs = [(("arg", i), args[i]) for i in request["learns"]]
        inputs += [(("param", i, n), p) for i, m in modules.items() for n, p in m.named_parameters()
                   if p.requires_grad]
        grads = torch.autograd.grad(value.sum(), [x for _, x in inputs], allow_unused=True) if inputs else []
        reply["grads"] = [(list(key), g.detach()) for (key, _), g in zip(inputs, grads) if g is not None]
    return reply


def serve(requests: int, replies: int) -> None:
    """Run the cells sent first, report their errors, then answer calls until told to stop."""
    import signal

    from IPython.core.interactiveshell import InteractiveShell

    # Python ignores this signal, so a file past its size limit would only raise in the cell that
    # wrote it; by default it ends the process, which the grader reports as too much output.
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    shell, me = InteractiveShell.instance(), os.getpid()
    errors = []
    for index, source in receive(requests, trusted=True):
        result = shell.run_cell(source, store_history=False)
        if os.getpid() != me:  # a process the cells forked never speaks on the grader's pipes
            os._exit(0)
        error = result.error_before_exec or result.error_in_exec
        if error is not None:
            errors.append((index, f"{type(error).__name__}: {error}"[:2000]))
    send(replies, {"errors": errors})
    while (request := receive(requests, trusted=True)) is not None:
        reply = call(shell.user_ns, request)
        if os.getpid() != me:
            os._exit(0)
        send(replies, reply)


# ----------------------------------------------------------------------------- building the wall


def bubblewrap() -> str | None:
    """The ``bwrap`` program if it is installed and can make a sandbox here, else None."""
    program = shutil.which("bwrap")
    if program is None:
        return None
    probe = subprocess.run([program, "--ro-bind", "/", "/", "--unshare-all", "--", "true"],
                           capture_output=True)
    return program if probe.returncode == 0 else None


def readable(paths: list[Path]) -> list[str]:
    """bwrap arguments that show ``paths`` read-only at their own places, every folder above
    them traversable (bwrap would make them private to root)."""
    args, made = [], {"/"}
    for path in paths:
        for parent in reversed(path.parents):
            if str(parent) not in made:
                made.add(str(parent))
                args += ["--perms", "0755", "--dir", str(parent)]
        args += ["--ro-bind", str(path), str(path)]
        made.add(str(path))
    return args


def system_binds() -> list[str]:
    """The system as programs need it: ``/usr`` and ``/etc`` read-only, the merged-usr links."""
    args = ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
    for name in ("bin", "sbin", "lib", "lib64", "lib32"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    return args


def wall(program: str, folder: Path, shown: list[Path]) -> list[str]:
    """The bwrap command that runs a program in ``folder`` (seen as :data:`INSIDE`) and ``shown``."""
    import sepbook

    environment = {Path(sys.prefix), Path(sys.base_prefix), Path(sepbook.__file__).resolve().parent, *shown}
    keep = sorted({p.resolve() for p in environment if not str(p.resolve()).startswith(("/usr/", "/etc/"))})
    keep = [p for p in keep if not any(q != p and p.is_relative_to(q) for q in keep)]
    command = [program, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
               "--die-with-parent", "--new-session", *system_binds(), "--proc", "/proc", "--dev", "/dev",
               "--tmpfs", "/tmp", *readable(keep), "--bind", str(folder), INSIDE, "--chdir", INSIDE]
    if os.geteuid() == 0:
        # As root the sandbox would run as root: drop to nobody inside it, so the process limit holds.
        command += ["--", "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                    "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
    else:
        command += ["--unshare-user", "--cap-drop", "ALL", "--"]
    return command


def _tasks_of(uid: int) -> int:
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(entry / "task"))
            except OSError:
                continue
    return count


def limiter(cpu_seconds: float, isolated: bool):
    """A ``preexec_fn`` that sets the submission's limits (:data:`LIMITS`) in the child."""
    uid = NOBODY if isolated and os.geteuid() == 0 else os.geteuid()
    processes = _tasks_of(uid) + LIMITS["processes"]

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (LIMITS["memory_bytes"],) * 2)
        resource.setrlimit(resource.RLIMIT_FSIZE, (LIMITS["file_bytes"],) * 2)
        resource.setrlimit(resource.RLIMIT_CPU, (int(cpu_seconds) + 1,) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if uid != 0:  # the kernel never limits root's processes
            resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))

    return apply


def environment(folder: str, data: Path | None) -> dict[str, str]:
    """A clean environment: nothing of the teacher's but the profile, one thread, no display."""
    names = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": folder, "LANG": "C.UTF-8",
             "MPLBACKEND": "Agg", "MPLCONFIGDIR": "/tmp" if folder == INSIDE else folder,
             "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1",
             "SEPBOOK_STATIC_HTML": "1", "SEPBOOK_PROFILE": os.environ.get("SEPBOOK_PROFILE", "tiny")}
    if data is not None:
        names["SEPBOOK_DATA"] = str(data)
    return names


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]))

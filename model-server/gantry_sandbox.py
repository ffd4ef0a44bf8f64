"""Gantry's sandbox launcher: runs model code (a replica, pip, the build's import check) as
an unprivileged user that sees only what it needs of Gantry's files.

It is started as root by the node or the worker, with the base Python (GANTRY_PYTHON) in
isolated mode, and replaces itself with the real command (no fork: the pid, the process
group, the standard streams and the event pipe on fd 3 stay the caller's). Before that it:

1. enters a mount namespace of its own (unshare(CLONE_NEWNS), propagation private), so that
   nothing it mounts is seen outside;
2. opens every path it will show (``--ro``, ``--rw``, ``--scratch``, the base Python prefix)
   while they are still reachable;
3. covers each ``--hide`` path (GANTRY_HOME) and every ancestor of a shown path that an
   unprivileged user could not traverse (``/root`` when Python lives under it) with an empty
   tmpfs;
4. binds each shown path back at its own path from the descriptor opened in step 2,
   read-only (remounted ``ro,nosuid,nodev``) unless it is ``--rw`` or the scratch directory;
5. drops to ``--uid``/``--gid`` with no supplementary groups, an empty capability bounding
   set, no ambient capabilities and no_new_privs, and execve's the command.

``expose`` shows one more read-only path inside a running sandbox (a development replica's
new code revision): it opens the path, joins the replica's mount namespace and binds it.
``probe`` checks that all of this works on this machine, with a trivial command.

Standard library only (ctypes for unshare, mount, setns and prctl); no bubblewrap.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import errno
import json
import os
import stat
import sys
from typing import List, Optional, Sequence, Tuple

# The variable the command's environment arrives in, as JSON (src/sandbox/sandbox.ts, SANDBOX_ENV_VARIABLE).
SANDBOX_ENV_VARIABLE = "GANTRY_SANDBOX_ENV"

CLONE_NEWNS = 0x00020000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
PR_SET_NO_NEW_PRIVS = 38
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
# open_tree and move_mount have the same numbers on every architecture (Linux 5.2 and later).
SYS_OPEN_TREE = 428
SYS_MOVE_MOUNT = 429
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x00000004
AT_FDCWD = -100
HIDING_TMPFS_OPTIONS = b"mode=0755,size=1m"

EXIT_SANDBOX_FAILED = 125


class SandboxError(Exception):
    """The sandbox could not be set up; the message says which step failed."""


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.syscall.restype = ctypes.c_long
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


def _syscall(number: int, *args: object) -> int:
    return _libc.syscall(number, *args)


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise SandboxError("%s: %s" % (what, os.strerror(code)))


def _mount(source: Optional[str], target: str, fstype: Optional[str], flags: int, data: Optional[bytes], what: str) -> None:
    _check(
        _libc.mount(
            source.encode() if source is not None else None,
            target.encode(),
            fstype.encode() if fstype is not None else None,
            flags,
            data,
        ),
        what,
    )


def _is_under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _ancestors(path: str) -> List[str]:
    """The directories above `path`, outermost first (`/` excluded)."""
    parts = path.strip("/").split("/")
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts))]


def hide_points(shown: Sequence[str], hidden: Sequence[str]) -> List[str]:
    """Where empty tmpfs mounts go: each hidden path, and the outermost ancestor of a shown
    path that other users cannot traverse (no x bit for others), outermost ones only."""
    points = [os.path.realpath(p) for p in hidden]
    for path in shown:
        for ancestor in _ancestors(path):
            if any(_is_under(ancestor, point) for point in points):
                break
            if not os.stat(ancestor).st_mode & stat.S_IXOTH:
                points.append(ancestor)
                break
    outermost: List[str] = []
    for point in sorted(set(points), key=len):
        if not any(_is_under(point, kept) for kept in outermost):
            outermost.append(point)
    return outermost


def _bind(fd: int, target: str, writable: bool) -> None:
    source = "/proc/self/fd/%d" % fd
    _mount(source, target, None, MS_BIND, None, "binding %s" % target)
    flags = MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | (0 if writable else MS_RDONLY)
    _mount(None, target, None, flags, None, "making %s %s" % (target, "writable" if writable else "read-only"))


def _make_mount_point(target: str, hidden: Sequence[str]) -> None:
    """Creates `target` inside a hiding tmpfs (never on the real filesystem)."""
    if os.path.isdir(target):
        return
    if not any(_is_under(target, point) for point in hidden):
        raise SandboxError("cannot show %s: it does not exist" % target)
    os.makedirs(target, mode=0o755, exist_ok=True)


def base_python_prefixes() -> List[str]:
    """The base interpreter's installation (this launcher runs with it): every venv made from
    it finds its standard library and executable there."""
    prefixes = []
    for prefix in (sys.base_prefix, sys.base_exec_prefix):
        real = os.path.realpath(prefix)
        if real not in prefixes:
            prefixes.append(real)
    return prefixes


def enter_sandbox(uid: int, gid: int, hidden: Sequence[str], read_only: Sequence[str], writable: Sequence[str], scratch: Optional[str]) -> None:
    """Sets up the mount namespace and drops privileges (see the module's description)."""
    if os.geteuid() != 0:
        raise SandboxError("the sandbox launcher must run as root (it runs as uid %d)" % os.geteuid())
    if uid <= 0 or gid <= 0:
        raise SandboxError("refusing to run model code as uid %d gid %d" % (uid, gid))
    if scratch:
        os.makedirs(scratch, mode=0o700, exist_ok=True)
        st = os.lstat(scratch)
        if not stat.S_ISDIR(st.st_mode):
            raise SandboxError("the scratch directory %s is not a directory" % scratch)
        os.chown(scratch, uid, gid, follow_symlinks=False)
        os.chmod(scratch, 0o700)
    binds: List[Tuple[str, bool]] = []
    for path in list(read_only) + base_python_prefixes():
        binds.append((os.path.realpath(path), False))
    for path in list(writable) + ([scratch] if scratch else []):
        binds.append((os.path.realpath(path), True))
    seen = set()
    unique: List[Tuple[str, bool]] = []
    for path, rw in binds:
        if path in seen:
            continue
        seen.add(path)
        unique.append((path, rw))
    hidden_points = hide_points([path for path, _ in unique], hidden)
    # Only what is under a hidden point needs binding back: the rest of the filesystem is seen
    # with its usual permissions (and belongs to root, so the model cannot change it).
    needed = [(path, rw) for path, rw in unique if any(_is_under(path, point) for point in hidden_points)]
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _mount("none", "/", None, MS_REC | MS_PRIVATE, None, "making mounts private")
    # Opened in the new namespace (a bind's source must be a mount of the namespace it goes
    # into) and before anything is hidden, so that they stay reachable once covered.
    descriptors = []
    for path, rw in sorted(needed, key=lambda item: len(item[0])):
        try:
            descriptors.append((path, rw, os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)))
        except OSError as exc:
            raise SandboxError("cannot open %s: %s" % (path, exc.strerror)) from exc
    for point in hidden_points:
        _mount("tmpfs", point, "tmpfs", MS_NOSUID | MS_NODEV, HIDING_TMPFS_OPTIONS, "hiding %s" % point)
    for path, rw, fd in descriptors:
        _make_mount_point(path, hidden_points)
        _bind(fd, path, rw)
        os.close(fd)
    drop_privileges(uid, gid)


def drop_privileges(uid: int, gid: int) -> None:
    """Becomes uid/gid for good: no supplementary groups, no capabilities, no_new_privs."""
    cap = 0
    while _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
        cap += 1
    if ctypes.get_errno() != errno.EINVAL:
        raise SandboxError("dropping capability %d from the bounding set: %s" % (cap, os.strerror(ctypes.get_errno())))
    _check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clearing ambient capabilities")
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "setting no_new_privs")
    if os.getuid() != uid or os.geteuid() != uid or os.getgid() != gid or os.getgroups():
        raise SandboxError("the switch to uid %d gid %d did not take" % (uid, gid))
    if _effective_capabilities() != 0:
        raise SandboxError("capabilities are left after the switch to uid %d" % uid)


def _effective_capabilities() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return -1


def expose(pid: int, path: str) -> None:
    """Shows `path` read-only inside the mount namespace of the sandboxed process `pid`."""
    real = os.path.realpath(path)
    # A detached copy of the directory's mount (open_tree), which may be attached in another
    # namespace, unlike a plain descriptor of it.
    tree = _syscall(SYS_OPEN_TREE, AT_FDCWD, real.encode(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC)
    if tree < 0:
        raise SandboxError("open_tree(%s): %s" % (real, os.strerror(ctypes.get_errno())))
    own = os.stat("/proc/self/ns/mnt").st_ino
    namespace = os.open("/proc/%d/ns/mnt" % pid, os.O_RDONLY | os.O_CLOEXEC)
    if os.fstat(namespace).st_ino == own:
        raise SandboxError("process %d is not in a sandbox of its own" % pid)
    _check(_libc.setns(namespace, CLONE_NEWNS), "joining the mount namespace of %d" % pid)
    os.chdir("/")
    parent = os.path.dirname(real)
    if not os.path.isdir(parent):
        raise SandboxError("%s is not inside the sandbox of %d" % (parent, pid))
    if not os.path.isdir(real):
        os.mkdir(real, 0o755)
    if _syscall(SYS_MOVE_MOUNT, tree, b"", AT_FDCWD, real.encode(), MOVE_MOUNT_F_EMPTY_PATH) != 0:
        raise SandboxError("attaching %s: %s" % (real, os.strerror(ctypes.get_errno())))
    flags = MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | MS_RDONLY
    _mount(None, real, None, flags, None, "making %s read-only" % real)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gantry_sandbox", description="Runs model code in Gantry's sandbox.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a command in a sandbox")
    run.add_argument("--uid", type=int, required=True)
    run.add_argument("--gid", type=int, required=True)
    run.add_argument("--hide", action="append", default=[], help="a path to cover with an empty tmpfs")
    run.add_argument("--ro", action="append", default=[], help="a directory shown read-only")
    run.add_argument("--rw", action="append", default=[], help="a directory shown writable")
    run.add_argument("--scratch", help="a directory made (owned by --uid, 0700) and shown writable")
    run.add_argument("--cwd", required=True)
    run.add_argument("argv", nargs=argparse.REMAINDER)
    show = commands.add_parser("expose", help="show one more directory read-only in a running sandbox")
    show.add_argument("--pid", type=int, required=True)
    show.add_argument("--ro", required=True)
    probe = commands.add_parser("probe", help="check that the sandbox works here")
    probe.add_argument("--uid", type=int, required=True)
    probe.add_argument("--gid", type=int, required=True)
    probe.add_argument("--hide", action="append", default=[])
    return parser


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "expose":
            expose(args.pid, args.ro)
            return 0
        if args.command == "probe":
            # The whole path a replica takes, with the base interpreter checking where it ended up.
            enter_sandbox(args.uid, args.gid, args.hide, [], [], None)
            check = "import os, sys; sys.exit(0 if os.getuid() == %d and os.getuid() != 0 else 3)" % args.uid
            os.execv(sys.executable, [sys.executable, "-I", "-S", "-c", check])
        command = list(args.argv)
        if command and command[0] == "--":
            command = command[1:]
        if not command:
            raise SandboxError("no command to run")
        if not os.path.isabs(command[0]):
            raise SandboxError("the command must be an absolute path (no search path is used): %s" % command[0])
        # The command's environment came as JSON in one variable: nothing of it (PATH, LD_PRELOAD,
        # a model's own variables) applied to this process, which runs as root until the exec.
        environment = json.loads(os.environ.get(SANDBOX_ENV_VARIABLE, "{}"))
        if not isinstance(environment, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in environment.items()):
            raise SandboxError("%s must be a JSON object of strings" % SANDBOX_ENV_VARIABLE)
        enter_sandbox(args.uid, args.gid, args.hide, args.ro, args.rw, args.scratch)
        os.chdir(args.cwd)
        os.execve(command[0], command, environment)
    except (SandboxError, OSError) as exc:
        sys.stderr.write("gantry sandbox: %s\n" % exc)
        sys.stderr.flush()
        return EXIT_SANDBOX_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

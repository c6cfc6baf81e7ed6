#!/usr/bin/python3
"""A hostile SFTP (version 3) subsystem for rmount's tests (tests/it/hostile.rs).

sshd runs it as `Subsystem sftp /usr/bin/python3 THIS_FILE`: SFTP packets
arrive on stdin and replies go to stdout. It serves a small read-only tree in
which some paths misbehave:

  /                 directory: hostile, longname, badlen, wrongid, silent,
                    good.txt
  /hostile          listing with names a server must never get exposed:
                    "../x", "a/b", ".", "..", "nul\\0byte", and one good
                    entry, "good.txt"
  /longname         a 5000-byte name and "good.txt"
  /badlen           listing whose reply announces a 2 GiB packet, sends a
                    few bytes of it and then nothing more
  /wrongid          stat answered with another request's id
  /silent           stat never answered (the subsystem stays alive)
  /good.txt         a 5-byte file, "hello"
  /endless          a listing that never ends: every READDIR answers 100
                    new names (not listed in /)

Everything else is "no such file". Writes are refused (permission denied).
"""

import os
import struct
import sys

FXP_INIT, FXP_VERSION = 1, 2
FXP_OPEN, FXP_CLOSE, FXP_READ = 3, 4, 5
FXP_LSTAT, FXP_FSTAT = 7, 8
FXP_OPENDIR, FXP_READDIR = 11, 12
FXP_REALPATH, FXP_STAT = 16, 17
FXP_STATUS, FXP_HANDLE, FXP_DATA, FXP_NAME, FXP_ATTRS = 101, 102, 103, 104, 105

FX_OK, FX_EOF, FX_NO_SUCH_FILE, FX_PERMISSION_DENIED, FX_OP_UNSUPPORTED = 0, 1, 2, 3, 8

ATTR_SIZE, ATTR_UIDGID, ATTR_PERMISSIONS, ATTR_ACMODTIME = 1, 2, 4, 8

MTIME = 1700000000
DIRS = {"/", "/hostile", "/longname", "/badlen", "/endless"}
FILES = {"/good.txt": b"hello", "/wrongid": b"", "/silent": b""}
HOSTILE_NAMES = [
    b"../x",
    b"a/b",
    b".",
    b"..",
    b"nul\x00byte",
    b"good.txt",
]
LONG_NAMES = [b"n" * 5000, b"good.txt"]

out = sys.stdout.buffer
inp = sys.stdin.buffer


def u32(n):
    return struct.pack(">I", n)


def string(b):
    return u32(len(b)) + b


def attrs(path):
    if path in DIRS:
        mode, size = 0o040755, 4096
    else:
        mode, size = 0o100644, len(FILES.get(path, b""))
    return (
        u32(ATTR_SIZE | ATTR_UIDGID | ATTR_PERMISSIONS | ATTR_ACMODTIME)
        + struct.pack(">Q", size)
        + u32(0)
        + u32(0)
        + u32(mode)
        + u32(MTIME)
        + u32(MTIME)
    )


def send(kind, payload):
    out.write(u32(len(payload) + 1) + bytes([kind]) + payload)
    out.flush()


def status(rid, code, msg=b""):
    send(FXP_STATUS, u32(rid) + u32(code) + string(msg) + string(b"en"))


def name_entry(name, path):
    longname = b"-rw-r--r--    1 0        0               5 Nov 14  2023 " + name
    return string(name) + string(longname) + attrs(path)


def read_exact(n):
    buf = b""
    while len(buf) < n:
        chunk = inp.read(n - len(buf))
        if not chunk:
            sys.exit(0)
        buf += chunk
    return buf


def norm(path):
    # normpath keeps a leading "//": strip the slashes first.
    return os.path.normpath("/" + path.decode("utf-8", "replace").lstrip("/"))


def main():
    handles = {}
    next_handle = 0
    while True:
        length = struct.unpack(">I", read_exact(4))[0]
        body = read_exact(length)
        kind, rest = body[0], body[1:]
        if kind == FXP_INIT:
            send(FXP_VERSION, u32(3))
            continue
        rid = struct.unpack(">I", rest[:4])[0]
        rest = rest[4:]

        def arg_path():
            n = struct.unpack(">I", rest[:4])[0]
            return rest[4 : 4 + n]

        if kind == FXP_REALPATH:
            p = norm(arg_path())
            send(FXP_NAME, u32(rid) + u32(1) + name_entry(p.encode(), p))
        elif kind in (FXP_STAT, FXP_LSTAT):
            p = norm(arg_path())
            if p == "/silent":
                continue  # never answered
            if p == "/wrongid":
                send(FXP_ATTRS, u32(rid + 1000) + attrs(p))
            elif p in DIRS or p in FILES:
                send(FXP_ATTRS, u32(rid) + attrs(p))
            else:
                status(rid, FX_NO_SUCH_FILE, b"no such file")
        elif kind == FXP_OPENDIR:
            p = norm(arg_path())
            if p not in DIRS:
                status(rid, FX_NO_SUCH_FILE, b"no such file")
                continue
            h = str(next_handle).encode()
            next_handle += 1
            handles[h] = [p, False]
            send(FXP_HANDLE, u32(rid) + string(h))
        elif kind == FXP_READDIR:
            h = arg_path()
            if h not in handles:
                status(rid, FX_NO_SUCH_FILE, b"bad handle")
                continue
            p, done = handles[h]
            if p == "/endless":
                first = int(handles[h][1])  # names sent so far
                handles[h][1] = first + 100
                names = [b"n%09d" % i for i in range(first, first + 100)]
                entries = b"".join(name_entry(n, "/good.txt") for n in names)
                send(FXP_NAME, u32(rid) + u32(len(names)) + entries)
                continue
            if done:
                status(rid, FX_EOF, b"eof")
                continue
            handles[h][1] = True
            if p == "/badlen":
                # Announce 2 GiB, send a little, then go quiet (stay alive).
                out.write(u32(0x7FFFFFF0) + bytes([FXP_NAME]) + u32(rid) + b"\0" * 64)
                out.flush()
                while True:
                    if not inp.read(65536):
                        sys.exit(0)
            if p == "/hostile":
                names = HOSTILE_NAMES
            elif p == "/longname":
                names = LONG_NAMES
            else:
                names = [b"hostile", b"longname", b"badlen", b"wrongid", b"silent", b"good.txt"]
            entries = b"".join(
                name_entry(n, norm(p.encode() + b"/" + n.replace(b"\0", b"")))
                for n in names
            )
            send(FXP_NAME, u32(rid) + u32(len(names)) + entries)
        elif kind == FXP_OPEN:
            p = norm(arg_path())
            if p not in FILES:
                status(rid, FX_NO_SUCH_FILE, b"no such file")
                continue
            h = str(next_handle).encode()
            next_handle += 1
            handles[h] = [p, False]
            send(FXP_HANDLE, u32(rid) + string(h))
        elif kind == FXP_READ:
            h = arg_path()
            off_at = 4 + len(h)
            offset, want = struct.unpack(">QI", rest[off_at : off_at + 12])
            data = FILES.get(handles.get(h, ["", False])[0], b"")
            if offset >= len(data):
                status(rid, FX_EOF, b"eof")
            else:
                send(FXP_DATA, u32(rid) + string(data[offset : offset + want]))
        elif kind == FXP_FSTAT:
            h = arg_path()
            send(FXP_ATTRS, u32(rid) + attrs(handles.get(h, ["/", False])[0]))
        elif kind == FXP_CLOSE:
            handles.pop(arg_path(), None)
            status(rid, FX_OK, b"ok")
        elif kind in (6, 9, 10, 13, 14, 15, 18, 19, 20):
            # write, setstat, fsetstat, remove, mkdir, rmdir, rename, readlink, symlink
            status(rid, FX_PERMISSION_DENIED, b"read-only")
        else:
            status(rid, FX_OP_UNSUPPORTED, b"unsupported")


if __name__ == "__main__":
    main()

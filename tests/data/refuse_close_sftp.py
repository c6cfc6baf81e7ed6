#!/usr/bin/python3
"""An SFTP subsystem that refuses to close written files, for rmount's tests
(tests/it/hostile.rs).

sshd runs it as `Subsystem sftp /usr/bin/python3 THIS_FILE SFTP_SERVER`: it
runs OpenSSH's real sftp-server and passes every packet through, except that
the CLOSE of a handle opened for writing is answered with SSH_FX_FAILURE
(after the real server closed it): a server that reports a failed write
only at CLOSE, as a full or failing disk can. Everything else is the real
server's answer.
"""

import struct
import subprocess
import sys
import threading

FXP_OPEN, FXP_CLOSE, FXP_STATUS, FXP_HANDLE = 3, 4, 101, 102
FX_FAILURE = 4
FXF_WRITE = 0x02


def read_packet(stream):
    """One length-prefixed packet (type byte first), or None at the end."""
    head = stream.read(4)
    if len(head) < 4:
        return None
    (length,) = struct.unpack(">I", head)
    body = stream.read(length)
    return body if len(body) == length else None


def write_packet(stream, body):
    stream.write(struct.pack(">I", len(body)) + body)
    stream.flush()


def string_at(body, offset):
    (n,) = struct.unpack(">I", body[offset : offset + 4])
    return body[offset + 4 : offset + 4 + n], offset + 4 + n


server = subprocess.Popen([sys.argv[1]], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
client_in, client_out = sys.stdin.buffer, sys.stdout.buffer
lock = threading.Lock()
writing_opens = set()  # request ids of OPENs for writing
written = set()  # handles opened for writing
refused_closes = set()  # request ids of CLOSEs of such handles


def from_server():
    while True:
        body = read_packet(server.stdout)
        if body is None:
            break
        kind = body[0]
        if kind in (FXP_HANDLE, FXP_STATUS) and len(body) >= 5:
            (rid,) = struct.unpack(">I", body[1:5])
            with lock:
                if kind == FXP_HANDLE and rid in writing_opens:
                    writing_opens.discard(rid)
                    handle, _ = string_at(body, 5)
                    written.add(handle)
                refuse = kind == FXP_STATUS and rid in refused_closes
                refused_closes.discard(rid)
            if refuse:
                message = b"close refused by the test server"
                body = (
                    bytes([FXP_STATUS])
                    + struct.pack(">II", rid, FX_FAILURE)
                    + struct.pack(">I", len(message))
                    + message
                    + struct.pack(">I", 0)
                )
        write_packet(client_out, body)
    client_out.close()


threading.Thread(target=from_server, daemon=True).start()

while True:
    body = read_packet(client_in)
    if body is None:
        break
    kind = body[0]
    if kind in (FXP_OPEN, FXP_CLOSE) and len(body) >= 5:
        (rid,) = struct.unpack(">I", body[1:5])
        if kind == FXP_OPEN:
            _, offset = string_at(body, 5)
            (pflags,) = struct.unpack(">I", body[offset : offset + 4])
            if pflags & FXF_WRITE:
                with lock:
                    writing_opens.add(rid)
        else:
            handle, _ = string_at(body, 5)
            with lock:
                if handle in written:
                    written.discard(handle)
                    refused_closes.add(rid)
    write_packet(server.stdin, body)

server.stdin.close()
server.wait()

"""Raw WebSocket client processes for ``bench/ws_scale.py``: many sockets, kernel receive timestamps.

Each process holds thousands of plain sockets on one epoll (no asyncio, no WebSocket library): the handshake
is written by hand, server frames (unmasked) are parsed by hand, and every read is a ``recvmsg`` with
``SO_TIMESTAMPNS``, so a frame's receive time is when the kernel queued it on the socket, not when this
(busy, CPU-sharing) process got round to it. Latency = kernel receive time - the CLOCK_REALTIME stamp the
broadcast carries (the same clock on one machine).

The parent drives a child over a ``multiprocessing`` pipe: ``("connect", n)``, ``("close",)``,
``("report",)`` and ``("stop",)``; the child reports ``("round", seq)`` once every one of its sockets got
broadcast ``seq``.
"""

from __future__ import annotations

import base64
import os
import re
import select
import socket
import struct
import time
from typing import Any

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # x86-64/arm64 value (SO_TIMESTAMPNS_OLD)
TIMESPEC = struct.Struct("qq")
ANC_SIZE = socket.CMSG_SPACE(TIMESPEC.size)
HANDSHAKE_BATCH = 200
SEQ_RE = re.compile(rb'"bench_seq":(\d+)')
STAMP_RE = re.compile(rb'"t":(\d+)')
OP_TEXT, OP_CLOSE, OP_PING = 0x1, 0x8, 0x9


def mask_frame(opcode: int, payload: bytes) -> bytes:
    """A client frame (clients must mask)."""
    key = os.urandom(4)
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + masked


def handshake_request(host: str, port: int, path: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()


def open_sockets(host: str, port: int, path: str, count: int, timeout: float = 60.0) -> tuple[list[socket.socket], int]:
    """``count`` upgraded sockets (blocking handshakes, pipelined in batches); returns them and the failures."""
    opened: list[socket.socket] = []
    failed = 0
    for start in range(0, count, HANDSHAKE_BATCH):
        batch: list[socket.socket] = []
        for _ in range(start, min(count, start + HANDSHAKE_BATCH)):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(timeout)
            try:
                s.connect((host, port))
                s.sendall(handshake_request(host, port, path))
                batch.append(s)
            except OSError:
                s.close()
                failed += 1
        for s in batch:
            head = b""
            try:
                while b"\r\n\r\n" not in head:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    head += chunk
            except OSError:
                head = b""
            if head.startswith(b"HTTP/1.1 101") and head.endswith(b"\r\n\r\n"):
                s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                s.setblocking(False)
                opened.append(s)
            else:
                s.close()
                failed += 1
    return opened, failed


class Conn:
    __slots__ = ("buf", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""


def client_main(host: str, port: int, path: str, ctl: Any) -> None:
    """Child process body: serve the parent's commands until ``stop``."""
    ep = select.epoll()
    ep.register(ctl.fileno(), select.EPOLLIN)
    conns: dict[int, Conn] = {}
    samples: list[tuple[int, int]] = []  # (seq, latency ns)
    seen: dict[int, int] = {}
    close_codes: dict[int, int] = {}
    lost = 0

    def drop(fd: int) -> None:
        conn = conns.pop(fd, None)
        if conn is not None:
            ep.unregister(fd)
            conn.sock.close()

    while True:
        for fd, _ in ep.poll(0.2):
            if fd == ctl.fileno():
                command = ctl.recv()
                if command[0] == "connect":
                    socks, failed = open_sockets(host, port, path, command[1])
                    for s in socks:
                        conns[s.fileno()] = Conn(s)
                        ep.register(s.fileno(), select.EPOLLIN)
                    ctl.send(("connected", len(socks), failed))
                elif command[0] == "close":
                    bye = mask_frame(OP_CLOSE, struct.pack("!H", 1000))
                    for cfd in list(conns):
                        try:
                            conns[cfd].sock.send(bye)
                        except OSError:
                            pass
                        drop(cfd)
                    ctl.send(("closed",))
                elif command[0] == "report":
                    ctl.send(("report", samples, dict(close_codes), lost, len(conns)))
                    samples, seen = [], {}
                elif command[0] == "stop":
                    for cfd in list(conns):
                        drop(cfd)
                    ctl.send(("stopped",))
                    return
                continue
            conn = conns.get(fd)
            if conn is None:
                continue
            try:
                data, anc, _, _ = conn.sock.recvmsg(65536, ANC_SIZE)
            except BlockingIOError:
                continue
            except OSError:
                lost += 1
                drop(fd)
                continue
            if not data:
                lost += 1
                drop(fd)
                continue
            stamp = time.time_ns()
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = TIMESPEC.unpack(value[: TIMESPEC.size])
                    stamp = sec * 1_000_000_000 + nsec
            buf = conn.buf + data
            while len(buf) >= 2:
                opcode, n, at = buf[0] & 0x0F, buf[1] & 0x7F, 2
                if n == 126:
                    if len(buf) < 4:
                        break
                    n, at = struct.unpack_from("!H", buf, 2)[0], 4
                elif n == 127:
                    if len(buf) < 10:
                        break
                    n, at = struct.unpack_from("!Q", buf, 2)[0], 10
                if len(buf) < at + n:
                    break
                payload, buf = buf[at : at + n], buf[at + n :]
                if opcode == OP_TEXT:
                    found = SEQ_RE.search(payload)
                    sent = STAMP_RE.search(payload)
                    if found and sent:
                        seq = int(found.group(1))
                        samples.append((seq, stamp - int(sent.group(1))))
                        seen[seq] = seen.get(seq, 0) + 1
                        if seen[seq] == len(conns):
                            ctl.send(("round", seq))
                elif opcode == OP_PING:
                    try:
                        conn.sock.send(mask_frame(0xA, payload))
                    except OSError:
                        pass
                elif opcode == OP_CLOSE:
                    code = struct.unpack_from("!H", payload)[0] if len(payload) >= 2 else 0
                    close_codes[code] = close_codes.get(code, 0) + 1
            conn.buf = buf

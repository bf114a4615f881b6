"""A websocket written byte by byte, as a hostile client writes one: any frame, fragment or silence it likes.

websocket-client and python-socketio only send well-formed messages; these tests need the ones that are not.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
from pathlib import Path
from urllib.parse import urlsplit

TEXT, BINARY, CONTINUATION, CLOSE = 0x1, 0x2, 0x0, 0x8


def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """One client frame. Masked, as a client's must be, with the all-zero key: the payload goes as it is."""
    head = bytes([(0x80 if fin else 0) | opcode])
    length = len(payload)
    if length < 126:
        head += bytes([0x80 | length])
    elif length < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", length)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", length)
    return head + b"\0\0\0\0" + payload


class RawWebSocket:
    """An engine.io websocket on a plain socket: the handshake, then whatever the test sends."""

    def __init__(self, base_url: str, timeout: float = 10, sid: str | None = None, rcvbuf: int | None = None) -> None:
        """A new engine.io connection; or, given the `sid` of a polling one, its upgrade (probe and upgrade sent).
        `rcvbuf`: a small receive buffer, so that a client that reads nothing soon stops the server's writes."""
        url = urlsplit(base_url)
        query = "EIO=4&transport=websocket" + (f"&sid={sid}" if sid else "")
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((url.hostname, url.port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((
            f"GET /socket.io/?{query} HTTP/1.1\r\n"
            f"Host: {url.hostname}:{url.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        self.received = b""
        while b"\r\n\r\n" not in self.received:
            self._read()
        head, self.received = self.received.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head
        self.response_head = head
        if sid:
            self.send_text("2probe")
            assert self.next_message() == b"3probe"
            self.send_text("5")  # engine.io's upgrade: the websocket carries the connection from now on
            return
        opened = self.next_message()
        assert opened is not None and opened.startswith(b"0{"), opened  # engine.io's open packet

    def _read(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.received += data
        return data

    def next_message(self) -> bytes | None:
        """The next data frame's payload (server frames are never fragmented here); None for a close frame."""
        while True:
            while len(self.received) < 2:
                self._read()
            opcode, length, start = self.received[0] & 0x0F, self.received[1] & 0x7F, 2
            if length == 126:
                while len(self.received) < 4:
                    self._read()
                length, start = struct.unpack("!H", self.received[2:4])[0], 4
            elif length == 127:
                while len(self.received) < 10:
                    self._read()
                length, start = struct.unpack("!Q", self.received[2:10])[0], 10
            while len(self.received) < start + length:
                self._read()
            payload, self.received = self.received[start:start + length], self.received[start + length:]
            if opcode == CLOSE:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                return None
            if opcode in (TEXT, BINARY):
                return payload

    def connect(self, auth: dict | None = None) -> bytes:
        """Socket.IO's connect to "/"; returns the server's answer (`40{...}` or `44{...}`)."""
        self.send_text("40" + (json.dumps(auth) if auth else ""))
        while True:
            message = self.next_message()
            assert message is not None, "closed instead of answering the connect"
            if message.startswith(b"4"):
                return message

    def send_text(self, text: str) -> None:
        self.sock.sendall(frame(TEXT, text.encode()))

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_to_end(self) -> bytes:
        """Everything until the server closes the socket (EOF or reset), without answering anything."""
        try:
            while True:
                self._read()
        except (EOFError, ConnectionResetError):
            return self.received

    def close(self) -> None:
        self.sock.close()


def polling_then_upgrade(base_url: str, auth: dict, timeout: float = 30) -> RawWebSocket:
    """A connection as socket.io's browser client makes it by default: long-polling for the handshake and the
    connect, then upgraded to a websocket."""
    import requests

    endpoint = f"{base_url}/socket.io/?EIO=4&transport=polling"
    opened = requests.get(endpoint, timeout=10).text
    assert opened.startswith("0{"), opened
    sid = json.loads(opened[1:])["sid"]
    posted = requests.post(f"{endpoint}&sid={sid}", data="40" + json.dumps(auth), timeout=10)
    assert posted.status_code == 200, (posted.status_code, posted.text)
    answer = requests.get(f"{endpoint}&sid={sid}", timeout=10).text
    assert answer.startswith("40{"), answer
    return RawWebSocket(base_url, timeout=timeout, sid=sid)


def rss_kib(pid: int) -> int:
    """The resident memory of a process, as `ps` and `top` show it."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def worker_pid(mode: str, pid: int) -> int:
    """The process that serves: gunicorn's one worker (the master's child), or eventlet's server itself."""
    if mode != "gevent":
        return pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])

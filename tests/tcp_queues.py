"""What the kernel holds in a loopback TCP connection's buffers (Linux's /proc/net/tcp), so that a test can tell
the bytes a process has taken from a socket (or given to it) from those still waiting in the kernel between two
processes, whose buffers loopback autotunes to megabytes."""

from __future__ import annotations

from pathlib import Path

_TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))


def queues(local_port: int, remote_port: int) -> tuple[int, int]:
    """(bytes sent and not yet acknowledged or not yet sent, bytes received and not yet read) of the loopback
    socket on `local_port` connected to `remote_port`; (0, 0) once it is gone."""
    for table in _TABLES:
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, tx_rx = fields[1], fields[2], fields[4]
            if int(local.rsplit(":", 1)[1], 16) == local_port and int(remote.rsplit(":", 1)[1], 16) == remote_port:
                tx, rx = tx_rx.split(":")
                return int(tx, 16), int(rx, 16)
    return 0, 0


def in_flight(sender_port: int, receiver_port: int) -> int:
    """Bytes written by the socket on `sender_port` that the one on `receiver_port` has not read yet."""
    return queues(sender_port, receiver_port)[0] + queues(receiver_port, sender_port)[1]

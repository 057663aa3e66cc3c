"""How the supervisor and the worker of a trial talk: JSON messages on a socket, arrays in memfds.

Messages are JSON, never pickle: the supervisor reads what an untrusted worker sends, and
unpickling would run the worker's code in the supervisor. Arrays (the training split, the model's
parameters and state) live in anonymous shared memory (`memfd_create`) handed over as file
descriptors, so no path of them exists for anyone else to open.
"""

from __future__ import annotations

import json
import mmap
import os
import select
import socket
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

ALIGN_BYTES = 64  # each array starts on a cache line (and a SIMD-friendly boundary)
_HEADER = struct.Struct("!I")
MAX_MESSAGE_BYTES = 64 * 2**20


@dataclass(frozen=True)
class ArraySpec:
    name: str
    dtype: str  # numpy dtype name, or "torch.<dtype>" for torch-only dtypes
    shape: tuple[int, ...]
    offset: int
    nbytes: int


def plan_layout(arrays: list[tuple[str, str, tuple[int, ...], int]]) -> list[ArraySpec]:
    """Place (name, dtype, shape, nbytes) arrays one after another, each aligned."""
    specs, offset = [], 0
    for name, dtype, shape, nbytes in arrays:
        specs.append(ArraySpec(name, dtype, tuple(int(d) for d in shape), offset, int(nbytes)))
        offset += -(-int(nbytes) // ALIGN_BYTES) * ALIGN_BYTES
    return specs


def layout_bytes(layout: list[ArraySpec]) -> int:
    return max((s.offset + s.nbytes for s in layout), default=0)


def layout_to_json(layout: list[ArraySpec]) -> list[list[Any]]:
    return [[s.name, s.dtype, list(s.shape), s.offset, s.nbytes] for s in layout]


def layout_from_json(items: list[list[Any]]) -> list[ArraySpec]:
    return [
        ArraySpec(str(n), str(d), tuple(int(x) for x in shape), int(o), int(b)) for n, d, shape, o, b in items
    ]


class SharedBlock:
    """One memfd-backed memory block, mapped into this process."""

    def __init__(self, fd: int, size: int, private: bool = False):
        self.fd, self.size = fd, size
        flags = mmap.MAP_PRIVATE if private else mmap.MAP_SHARED
        # mmap of length 0 is an error; a one-byte block stands in for "no arrays".
        self.map = mmap.mmap(fd, max(1, size), flags=flags, prot=mmap.PROT_READ | mmap.PROT_WRITE)

    @classmethod
    def create(cls, name: str, size: int) -> SharedBlock:
        fd = os.memfd_create(name, os.MFD_CLOEXEC)
        os.ftruncate(fd, max(1, size))
        return cls(fd, size)

    def numpy_views(self, layout: list[ArraySpec]) -> dict[str, np.ndarray]:
        return {
            s.name: np.frombuffer(
                self.map, dtype=np.dtype(s.dtype), count=_count(s), offset=s.offset
            ).reshape(s.shape)
            for s in layout
        }

    def close(self) -> None:
        try:
            self.map.close()
        except BufferError:  # views still alive: the mapping goes when they do
            pass
        try:
            os.close(self.fd)
        except OSError:
            pass


def _count(spec: ArraySpec) -> int:
    return int(np.prod(spec.shape, dtype=np.int64))


def numpy_layout(arrays: dict[str, np.ndarray]) -> list[ArraySpec]:
    return plan_layout([(k, v.dtype.str, v.shape, v.nbytes) for k, v in arrays.items()])


def share_arrays(name: str, arrays: dict[str, np.ndarray]) -> tuple[SharedBlock, list[ArraySpec]]:
    """Copy numpy arrays into a new shared block; returns the block and its layout."""
    layout = numpy_layout(arrays)
    block = SharedBlock.create(name, layout_bytes(layout))
    for spec, view in zip(layout, block.numpy_views(layout).values(), strict=True):
        view[...] = arrays[spec.name]
    return block, layout


class ControlFlags:
    """A few bytes both processes map: the supervisor raises `stop` when an eval or the budget is
    due; the worker reads it after every step (a memory read, no system call)."""

    STOP = 0

    def __init__(self, block: SharedBlock):
        self.block = block

    @classmethod
    def create(cls) -> ControlFlags:
        return cls(SharedBlock.create("algoperf-control", 64))

    def request_stop(self) -> None:
        self.block.map[self.STOP] = 1

    def clear_stop(self) -> None:
        self.block.map[self.STOP] = 0

    @property
    def stop_requested(self) -> bool:
        return self.block.map[self.STOP] != 0


class Channel:
    """Length-prefixed JSON messages over a connected Unix socket; can carry file descriptors."""

    def __init__(self, sock: socket.socket):
        self.sock = sock

    def send(self, message: dict[str, Any], fds: list[int] | None = None) -> None:
        body = json.dumps(message, allow_nan=True).encode()
        data = _HEADER.pack(len(body)) + body
        if fds:
            socket.send_fds(self.sock, [data[:1]], fds)
            self.sock.sendall(data[1:])
        else:
            self.sock.sendall(data)

    def poll(self, timeout_s: float | None) -> bool:
        """True when a message (or EOF) is ready within `timeout_s` (None: wait forever)."""
        ready, _, _ = select.select([self.sock], [], [], None if timeout_s is None else max(0.0, timeout_s))
        return bool(ready)

    def recv(self, with_fds: int = 0) -> tuple[dict[str, Any], list[int]]:
        """The next message (and up to `with_fds` descriptors); EOFError when the peer is gone."""
        fds: list[int] = []
        if with_fds:
            first, fds, _, _ = socket.recv_fds(self.sock, 1, with_fds)
            if not first:
                raise EOFError("the peer closed the channel")
            head = first + self._read_exact(_HEADER.size - 1)
        else:
            head = self._read_exact(_HEADER.size)
        (size,) = _HEADER.unpack(head)
        if size > MAX_MESSAGE_BYTES:
            raise ValueError(f"message of {size} bytes is over the {MAX_MESSAGE_BYTES}-byte limit")
        message = json.loads(self._read_exact(size))
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise ValueError("malformed message: expected a JSON object with a 'type'")
        return message, fds

    def _read_exact(self, size: int) -> bytes:
        chunks, left = [], size
        while left:
            chunk = self.sock.recv(left)
            if not chunk:
                raise EOFError("the peer closed the channel")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        self.sock.close()

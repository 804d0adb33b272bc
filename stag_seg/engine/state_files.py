"""The files a resumable run keeps: written whole or not at all, and checked when read.

A state file is a 56-byte header (a magic string, the payload's length and its SHA-256) followed
by what ``torch.save`` writes. ``torch.load`` alone would load a file whose tensor bytes were
changed without a word (its zip reader does not check the CRCs), so the digest is what tells a
whole file from a damaged one; the length tells a truncated one.

Writing is atomic: a temporary file in the same folder, ``fsync``, ``os.replace``, then an
``fsync`` of the folder, so a kill or a full disk at any moment leaves the previous files as
they were and never a file under the final name that is not whole. Each file is named after the
stream step it was saved at and the process that saved it, ``00000120.rank1-of-2.pth``, so the
files of one step can be matched across ranks and a run with another process count is told
apart by name alone.
"""
from __future__ import annotations

import errno
import hashlib
import io
import os
import os.path as osp
import re
import struct
from typing import Any

import torch

from ..compat import load_checkpoint

__all__ = ['StateFileError', 'StateName', 'check_state', 'fsync_dir', 'list_states',
           'read_state', 'state_name', 'write_state']

#: The header: magic (16 bytes, the last one the file layout), payload length, SHA-256.
_MAGIC = b'stag_seg-state\x00\x01'
_HEADER = struct.Struct('<16sQ32s')
_NAME = re.compile(r'^(\d{8,})\.rank(\d+)-of-(\d+)\.pth$')
_CHUNK = 1 << 20


class StateFileError(ValueError):
    """A state file that must not be loaded; the message names it and what is wrong."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f'{path}: {problem}')
        self.path, self.problem = path, problem


class StateName(tuple):
    """``(step, rank, world_size)`` parsed from a state file's name."""

    @property
    def step(self) -> int:
        return self[0]

    @property
    def rank(self) -> int:
        return self[1]

    @property
    def world_size(self) -> int:
        return self[2]


def state_name(step: int, rank: int, world_size: int) -> str:
    """The file name of the state saved at stream step ``step`` by ``rank`` of ``world_size``."""
    return f'{step:08d}.rank{rank}-of-{world_size}.pth'


def list_states(folder: str) -> dict[str, StateName]:
    """The state files in ``folder`` (none when it does not exist): ``{path: StateName}``."""
    if not osp.isdir(folder):
        return {}
    found = {}
    for name in sorted(os.listdir(folder)):
        match = _NAME.match(name)
        if match:
            found[osp.join(folder, name)] = StateName(int(g) for g in match.groups())
    return found


class _HashingWriter:
    """A write-only file object that digests and counts what goes through it."""

    def __init__(self, file) -> None:
        self.file, self.digest, self.size = file, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.file.write(data)

    def flush(self) -> None:
        self.file.flush()


class _Window(io.RawIOBase):
    """``size`` bytes of ``file`` from ``start``, as a file of their own (for ``torch.load``)."""

    def __init__(self, file, start: int, size: int) -> None:
        self.file, self.start, self.size = file, start, size
        self.name = getattr(file, 'name', '<state file>')  # for the loader's messages
        file.seek(start)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.file.tell() - self.start

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.tell(), io.SEEK_END: self.size}[whence]
        self.file.seek(self.start + base + offset)
        return base + offset

    def readinto(self, buffer) -> int:
        count = min(len(buffer), self.size - self.tell())
        return self.file.readinto(memoryview(buffer)[:count]) if count > 0 else 0


def fsync_dir(folder: str) -> None:
    """Make a rename in ``folder`` durable (where the file system lets a folder be synced)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as err:  # some file systems cannot sync a folder; the rename still holds
        if err.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def write_state(path: str, state: Any) -> int:
    """Write ``state`` to ``path`` atomically (temporary file, ``fsync``, rename); return its
    size in bytes.

    On any error (a full disk raises ``OSError(ENOSPC)``) the temporary file is removed and
    the error raised; ``path`` and every other file are as they were.
    """
    folder = osp.dirname(path) or '.'
    tmp = osp.join(folder, f'.{osp.basename(path)}.tmp')
    try:
        with open(tmp, 'wb') as f:
            f.write(_HEADER.pack(b'\x00' * 16, 0, b'\x00' * 32))  # whole once rewritten below
            writer = _HashingWriter(f)
            torch.save(state, writer)
            f.seek(0)
            f.write(_HEADER.pack(_MAGIC, writer.size, writer.digest.digest()))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    fsync_dir(folder)
    return _HEADER.size + writer.size


def check_state(path: str) -> None:
    """Raise :class:`StateFileError` when ``path`` is not a whole state file: too short, not a
    state file, truncated or extended, or with bytes that differ from what was written."""
    size = osp.getsize(path)
    with open(path, 'rb') as f:
        head = f.read(_HEADER.size)
        if len(head) < _HEADER.size:
            raise StateFileError(path, f'truncated: {size} bytes, shorter than the '
                                 f'{_HEADER.size}-byte header of a state file')
        magic, length, digest = _HEADER.unpack(head)
        if magic != _MAGIC:
            raise StateFileError(path, f'not a stag_seg state file of this layout (it begins '
                                 f'with {magic!r}, expected {_MAGIC!r})')
        if size != _HEADER.size + length:
            what = 'truncated' if size < _HEADER.size + length else 'longer than written'
            raise StateFileError(path, f'{what}: {size - _HEADER.size} bytes after the header, '
                                 f'which says {length}')
        actual = hashlib.sha256()
        while chunk := f.read(_CHUNK):
            actual.update(chunk)
    if actual.digest() != digest:
        raise StateFileError(path, f'corrupted: the SHA-256 of its contents is '
                             f'{actual.hexdigest()[:16]}..., written as {digest.hex()[:16]}... '
                             '(bytes changed after it was written)')


def read_state(path: str, check: bool = True) -> Any:
    """Load a state file that :func:`write_state` wrote, with the safe loader.

    Args:
        path (str): The file.
        check (bool): Verify the length and the digest first (:func:`check_state`).
            Defaults to True.

    Raises:
        StateFileError: the file is damaged or cannot be unpickled safely.
    """
    if check:
        check_state(path)
    with open(path, 'rb') as f:
        _, length, _ = _HEADER.unpack(f.read(_HEADER.size))
        try:
            return load_checkpoint(_Window(f, _HEADER.size, length))
        except Exception as err:  # noqa: BLE001  the message says what failed
            raise StateFileError(path, f'unreadable: {type(err).__name__}: {err}') from None

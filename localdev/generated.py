"""Deterministic pseudo-random bytes of any size, produced on demand: a multi-GB object
for streaming tests and the bench without a multi-GB file."""

from __future__ import annotations

import hashlib
import io


class GeneratedObject(io.RawIOBase):
    """Deterministic pseudo-random bytes of a given size, produced on demand."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self._size, self._pos = size, 0
        self._block = b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(4096))

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self._size - self._pos)
        offset, filled = self._pos % len(self._block), 0
        while filled < n:
            piece = self._block[offset : offset + n - filled]
            buffer[filled : filled + len(piece)] = piece
            filled += len(piece)
            offset = 0
        self._pos += n
        return n


def sha256_of_generated(size: int) -> str:
    digest, stream = hashlib.sha256(), GeneratedObject(size)
    while chunk := stream.read(8 * 1024 * 1024):
        digest.update(chunk)
    return digest.hexdigest()

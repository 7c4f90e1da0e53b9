"""Event and person ids as PostHog writes them (UUIDv7 / v4 text), built without per-row Python."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa


def strings_from_fixed(buf: np.ndarray) -> pa.Array:
    """An Arrow string array over an (n, width) uint8 matrix of ASCII, without per-row Python."""
    import numpy as np
    import pyarrow as pa

    n, width = buf.shape
    data = np.ascontiguousarray(buf)
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


_UUID_HEX_POS = [i for i in range(36) if i not in (8, 13, 18, 23)]


def uuid_strings(raw: np.ndarray) -> pa.Array:
    """Format an (n, 16) uint8 matrix as canonical lowercase UUID text."""
    import numpy as np

    hexdig = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    buf = np.full((raw.shape[0], 36), ord("-"), dtype=np.uint8)
    buf[:, _UUID_HEX_POS[0::2]] = hexdig[raw >> 4]
    buf[:, _UUID_HEX_POS[1::2]] = hexdig[raw & 0x0F]
    return strings_from_fixed(buf)


def uuid7_bytes(rng: np.random.Generator, ts_us: np.ndarray) -> np.ndarray:
    """UUIDv7 (what PostHog uses for event ids): 48-bit unix milliseconds, then random bits."""
    import numpy as np

    n = len(ts_us)
    raw = np.frombuffer(rng.bytes(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    ms = (ts_us // 1000).astype(np.uint64)
    for i, shift in enumerate(range(40, -8, -8)):
        raw[:, i] = ((ms >> np.uint64(shift)) & np.uint64(0xFF)).astype(np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x70
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    return raw


def uuid4_bytes(rng: np.random.Generator, n: int) -> np.ndarray:
    import numpy as np

    raw = np.frombuffer(rng.bytes(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    return raw

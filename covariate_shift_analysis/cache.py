"""On-disk vector cache: one SQLite file per embedding identity (model, window, truncation rule), keyed by text hash.

Each batch of new vectors is one transaction, so a killed run keeps every committed batch and a rerun (or a run
with more groups) embeds only texts it has never seen. Lookups go by key, so memory does not grow with the cache.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from covariate_shift_analysis.errors import CovariateShiftError

_LOOKUP_BATCH = 500


def _chunks(keys: Sequence[bytes], size: int = _LOOKUP_BATCH) -> Iterator[Sequence[bytes]]:
    for start in range(0, len(keys), size):
        yield keys[start : start + size]


class EmbeddingCache:
    def __init__(self, cache_dir: str | Path, identity: str) -> None:
        self.identity = identity
        readable = re.sub(r"[^A-Za-z0-9._-]+", "_", identity.split("|", 1)[0].rsplit("/", 1)[-1])[:60]
        digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
        self.path = Path(cache_dir).expanduser() / f"{readable}-{digest}.sqlite"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=120)
            with self._db:
                self._db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
                self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vector BLOB NOT NULL) WITHOUT ROWID")
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('identity', ?)", (identity,))
        except sqlite3.Error as exc:
            raise CovariateShiftError(f"{self.path}: embedding cache cannot be opened ({exc}); set embedding.cache_dir") from None
        stored = self._meta("identity")
        if stored != identity:
            raise CovariateShiftError(f"{self.path}: cache belongs to '{stored}', not '{identity}'")

    def _meta(self, name: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else row[0]

    @property
    def dimension(self) -> int | None:
        value = self._meta("dimension")
        return None if value is None else int(value)

    def present(self, keys: Iterable[bytes]) -> set[bytes]:
        """The subset of `keys` that already has a vector."""
        unique = list(dict.fromkeys(keys))
        found: set[bytes] = set()
        for batch in _chunks(unique):
            marks = ",".join("?" * len(batch))
            found.update(row[0] for row in self._db.execute(f"SELECT key FROM vectors WHERE key IN ({marks})", batch))
        return found

    def put(self, keys: Sequence[bytes], vectors: np.ndarray) -> None:
        """Store one batch in a single transaction."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self._db:
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('dimension', ?)", (str(vectors.shape[1]),))
            if self.dimension != vectors.shape[1]:
                raise CovariateShiftError(f"{self.path}: cached vectors have {self.dimension} dimensions, new ones {vectors.shape[1]}")
            self._db.executemany(
                "INSERT OR IGNORE INTO vectors VALUES (?, ?)", zip(keys, (row.tobytes() for row in vectors))
            )

    def get(self, keys: Sequence[bytes]) -> np.ndarray:
        """(len(keys), dimension) float32, in the order of `keys`; every key must be present, and appear once."""
        dimension = self.dimension
        out = np.empty((len(keys), dimension or 0), dtype=np.float32)
        position = {key: index for index, key in enumerate(keys)}
        filled = 0
        for batch in _chunks(list(position)):
            marks = ",".join("?" * len(batch))
            for key, blob in self._db.execute(f"SELECT key, vector FROM vectors WHERE key IN ({marks})", batch):
                out[position[key]] = np.frombuffer(blob, dtype=np.float32)
                filled += 1
        if filled != len(position):
            raise CovariateShiftError(f"{self.path}: {len(position) - filled} vector(s) missing from the cache")
        return out

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

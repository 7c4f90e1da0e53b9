"""One interface over a local folder and an S3 prefix.

Exports, partials, outputs and state all live under a `Location`. S3 goes through pyarrow's
S3 filesystem (ranged reads, so a Parquet file is streamed, never downloaded whole) with
credentials resolved by boto3's chain; conditional writes use boto3 because pyarrow has none.
The endpoint comes from `endpoint_url` or the standard `AWS_ENDPOINT_URL[_S3]` variables, which
is how tests point everything at moto server on loopback.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    import pyarrow.fs as pafs


class StorageError(RuntimeError):
    """An object could not be listed, read or written; the message names it."""


class LocationError(StorageError, ValueError):
    """A location string we cannot use (a usage error, not an I/O failure)."""


class ConflictError(StorageError):
    """A conditional write lost: someone else wrote the object since we read it."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str  # relative to the location root, '/'-separated
    size: int
    mtime: float | None = None  # last modified, epoch seconds

    @property
    def fingerprint(self) -> str:
        """Changes when the object is rewritten (a re-exported interval), so work keyed on it is redone."""
        import hashlib

        return hashlib.sha1(f"{self.size}:{self.mtime}".encode()).hexdigest()[:12]


def _endpoint(explicit: str | None) -> str | None:
    return explicit or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


@dataclass(frozen=True)
class Location:
    """A root URI (`s3://bucket/prefix`, `file:///abs` or a plain path) plus how to reach it."""

    uri: str
    endpoint_url: str | None = None

    @property
    def is_s3(self) -> bool:
        return self.uri.startswith("s3://")

    @property
    def root(self) -> str:
        """The root as a path inside `fs` ("bucket/prefix" for S3, an absolute path locally)."""
        if self.is_s3:
            return self.uri[len("s3://") :].rstrip("/")
        path = self.uri[len("file://") :] if self.uri.startswith("file://") else self.uri
        return str(Path(path).expanduser().resolve())

    @property
    def bucket(self) -> str:
        return self.root.split("/", 1)[0]

    def child(self, *parts: str) -> Location:
        """A location below this one (same filesystem and endpoint)."""
        sep = "/" if self.is_s3 else os.sep
        tail = "/".join(p.strip("/") for p in parts if p)
        base = self.uri.rstrip("/")
        return Location(f"{base}{sep if tail else ''}{tail}", self.endpoint_url)

    def path(self, key: str = "") -> str:
        return f"{self.root}/{key}" if key else self.root

    def uri_of(self, key: str) -> str:
        return f"s3://{self.path(key)}" if self.is_s3 else self.path(key)

    def key_of(self, uri: str) -> str:
        """The inverse of uri_of: the key of an object URI below this location."""
        path = uri.removeprefix("s3://") if self.is_s3 else uri
        if not path.startswith(self.root + "/"):
            raise StorageError(f"{uri} is not below {self.uri}")
        return path[len(self.root) + 1 :]

    # -- clients -----------------------------------------------------------------------------

    @cached_property
    def _boto_session(self):
        import boto3

        return boto3.session.Session()

    @cached_property
    def s3_client(self):
        return self._boto_session.client("s3", endpoint_url=_endpoint(self.endpoint_url))

    @cached_property
    def fs(self) -> pafs.FileSystem:
        import pyarrow.fs as pafs

        if not self.is_s3:
            return pafs.LocalFileSystem()
        creds = self._boto_session.get_credentials()
        frozen = creds.get_frozen_credentials() if creds else None
        endpoint = _endpoint(self.endpoint_url)
        kwargs = {
            "region": self._boto_session.region_name or os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            "access_key": frozen.access_key if frozen else None,
            "secret_key": frozen.secret_key if frozen else None,
            "session_token": frozen.token if frozen else None,
            "anonymous": frozen is None,
        }
        if endpoint:
            scheme, _, host = endpoint.partition("://")
            kwargs.update(endpoint_override=host.rstrip("/"), scheme=scheme)
        return pafs.S3FileSystem(**kwargs)

    # -- operations --------------------------------------------------------------------------

    def list(self, suffixes: tuple[str, ...] = ()) -> list[ObjectInfo]:
        """Every object below the root (recursively), sorted by key; an absent root is empty."""
        import pyarrow.fs as pafs

        try:
            infos = self.fs.get_file_info(pafs.FileSelector(self.root, recursive=True, allow_not_found=True))
        except OSError as exc:
            raise StorageError(f"cannot list {self.uri}: {exc}") from exc
        prefix = self.root + "/"
        found = [
            ObjectInfo(i.path[len(prefix) :], i.size or 0, i.mtime.timestamp() if i.mtime else None)
            for i in infos
            if i.type == pafs.FileType.File and (not suffixes or any(s in i.base_name for s in suffixes))
        ]
        return sorted(found, key=lambda o: o.key)

    def exists(self, key: str) -> bool:
        import pyarrow.fs as pafs

        return self.fs.get_file_info(self.path(key)).type == pafs.FileType.File

    def open(self, key: str) -> BinaryIO:
        """A seekable reader (ranged GETs on S3)."""
        try:
            return self.fs.open_input_file(self.path(key))
        except (OSError, FileNotFoundError) as exc:
            raise StorageError(f"cannot open {self.uri_of(key)}: {exc}") from exc

    def read_bytes(self, key: str) -> bytes:
        with self.open(key) as f:
            return f.read()

    def write_bytes(self, key: str, data: bytes) -> None:
        """Write an object whole or not at all: an S3 PUT is atomic per object; locally the bytes go
        to a temporary file beside the target, flushed to disk, then renamed over it."""
        if self.is_s3:
            try:
                with self.fs.open_output_stream(self.path(key), compression=None) as out:
                    out.write(data)
            except OSError as exc:
                raise StorageError(f"cannot write {self.uri_of(key)}: {exc}") from exc
            return
        target = Path(self.path(key))
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise StorageError(f"cannot write {self.uri_of(key)}: {exc}") from exc

    def write_frame(self, key: str, frame) -> str:
        """A pandas frame as zstd Parquet (written atomically); returns the object's URI."""
        self.write_bytes(key, parquet_bytes(frame))
        return self.uri_of(key)

    def move(self, source: str, target: str) -> None:
        """Move one object to another key (a rename locally; copy then delete on S3)."""
        try:
            if self.is_s3:
                self.s3_client.copy_object(
                    Bucket=self.bucket,
                    Key=self.path(target).split("/", 1)[1],
                    CopySource={"Bucket": self.bucket, "Key": self.path(source).split("/", 1)[1]},
                )
                self.s3_client.delete_object(Bucket=self.bucket, Key=self.path(source).split("/", 1)[1])
                return
            Path(self.path(target)).parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.path(source), self.path(target))
        except Exception as exc:  # botocore's ClientError or OSError: name both objects
            raise StorageError(f"cannot move {self.uri_of(source)} to {self.uri_of(target)}: {exc}") from exc

    def read_frame(self, key: str):
        import pyarrow.parquet as pq

        with self.open(key) as f:
            return pq.read_table(f).to_pandas()

    def open_output(self, key: str):
        """A write stream (multipart upload on S3); parents are created locally."""
        if not self.is_s3:
            Path(self.path(key)).parent.mkdir(parents=True, exist_ok=True)
        # compression=None: pyarrow would otherwise wrap a '*.parquet.zst' key in a zstd stream.
        return self.fs.open_output_stream(self.path(key), compression=None)

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_file(self.path(key))

    def ensure_bucket(self) -> None:
        """Create the bucket when absent (demo and tests against moto)."""
        if not self.is_s3:
            Path(self.root).mkdir(parents=True, exist_ok=True)
            return
        from botocore.exceptions import ClientError

        try:
            self.s3_client.head_bucket(Bucket=self.bucket)
        except ClientError:
            self.s3_client.create_bucket(Bucket=self.bucket)


def parquet_bytes(frame) -> bytes:
    """A pandas frame as zstd Parquet bytes (to write, or to record their size)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def location(uri: str, endpoint_url: str | None = None) -> Location:
    """Parse a user-given location, refusing schemes we cannot read."""
    if "://" in uri and not uri.startswith(("s3://", "file://")):
        raise LocationError(f"unsupported location {uri!r}: use s3://bucket/prefix or a local folder")
    if uri.startswith("s3://") and not uri[len("s3://") :].strip("/"):
        raise LocationError(f"location {uri!r} names no bucket")
    return Location(uri, endpoint_url)

"""The S3-compatible backend (AWS S3, MinIO, Ceph RGW, moto) on s3fs.

Configured by an Argo ``s3`` block (:class:`S3Config.from_argo`): ``endpoint`` (host[:port],
or a URL), ``bucket``, ``keyPrefix``, ``region``, ``insecure`` (plain HTTP),
``accessKeySecret``/``secretKeySecret``/``sessionTokenSecret`` (``{name, key}`` references
into the chute secret store), ``useSDKCreds``, ``addressingStyle``,
``createBucketIfNotPresent``. Credentials never come from the spec in clear text: from
the secret references if given, else from ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``
(/``AWS_SESSION_TOKEN``), else the SDK's chain with ``useSDKCreds: true``, else anonymous.

Uploads stream through a multipart upload that is completed only when the whole object
is written and aborted on any error; S3 shows an object only once it is complete, so a
killed writer leaves nothing visible (L-3); its incomplete upload is invisible but billed
until a bucket lifecycle rule (``AbortIncompleteMultipartUpload``) removes it. A directory
stored as is (``archive: none``) is one object per file: each is atomic, and the directory
is complete once :meth:`ArtifactRepository.save` returns its record (the record is the
commit point the engine publishes). Errors name the bucket and key and are scrubbed of
every credential value before they are raised.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from chute.artifacts.egress import check_host
from chute.artifacts.keys import safe_key
from chute.errors import NotFoundError, UnsupportedError, UserError

log = logging.getLogger(__name__)

PART_SIZE = 16 * 1024 * 1024  # multipart part size: bounds the upload buffer in memory
READ_BLOCK = 8 * 1024 * 1024
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 900.0

_SUPPORTED = {"endpoint", "bucket", "key", "keyPrefix", "keyFormat", "region", "insecure",
              "accessKeySecret", "secretKeySecret", "sessionTokenSecret", "useSDKCreds",
              "addressingStyle", "createBucketIfNotPresent"}
_UNSUPPORTED = {"roleARN", "encryptionOptions", "caSecret"}


@dataclass(frozen=True)
class S3Config:
    """Where an S3 repository is and how to authenticate (references, not values)."""

    bucket: str
    endpoint: str | None = None
    key_prefix: str = ""
    region: str | None = None
    insecure: bool = False
    access_key_ref: Mapping[str, str] | None = None
    secret_key_ref: Mapping[str, str] | None = None
    session_token_ref: Mapping[str, str] | None = None
    use_sdk_creds: bool = False
    addressing_style: str | None = None
    create_bucket: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_argo(cls, block: Mapping[str, Any], where: str = "s3",
                  defaults: S3Config | None = None) -> S3Config:
        """Build from an Argo ``S3ArtifactRepository``/``S3Artifact`` mapping; fields it
        leaves out come from ``defaults`` (the default repository's), as Argo merges them."""
        block = dict(block or {})
        for name in block:
            if name in _UNSUPPORTED:
                raise UnsupportedError(f"{where}.{name}: not supported by the local runtime")
            if name not in _SUPPORTED:
                raise UserError(f"{where}.{name}: unknown field")
        fmt = block.get("keyFormat")
        if fmt and "{{" in str(fmt):
            raise UnsupportedError(
                f"{where}.keyFormat: templated key formats are not supported; chute keys are "
                "{workflow uid}/{node id}/{artifact}; use keyPrefix")
        d = defaults
        # A key-only block (no bucket, no endpoint) is a key in the default repository;
        # a block naming the default's bucket and endpoint inherits its other settings too.
        inherit = d is not None and (
            ("bucket" not in block and "endpoint" not in block)
            or (block.get("bucket", d.bucket) == d.bucket
                and block.get("endpoint", d.endpoint) == d.endpoint))

        def pick(name: str, attr: str, default=None):
            if name in block:
                return block[name]
            return getattr(d, attr) if inherit else default

        bucket = pick("bucket", "bucket")
        if not bucket:
            raise UserError(f"{where}.bucket: required")
        prefix = str(block.get("keyPrefix") or fmt or (d.key_prefix if inherit else "") or "")
        if prefix:
            prefix = safe_key(prefix, f"{where}.keyPrefix")
        return cls(
            bucket=str(bucket),
            endpoint=pick("endpoint", "endpoint"),
            key_prefix=prefix,
            region=pick("region", "region"),
            insecure=bool(pick("insecure", "insecure", False)),
            access_key_ref=_ref(pick("accessKeySecret", "access_key_ref")),
            secret_key_ref=_ref(pick("secretKeySecret", "secret_key_ref")),
            session_token_ref=_ref(pick("sessionTokenSecret", "session_token_ref")),
            use_sdk_creds=bool(pick("useSDKCreds", "use_sdk_creds", False)),
            addressing_style=pick("addressingStyle", "addressing_style"),
            create_bucket=("createBucketIfNotPresent" in block
                           or bool(d and inherit and d.create_bucket)),
        )

    def endpoint_url(self) -> str | None:
        """The endpoint as a URL (``http://`` when ``insecure``)."""
        if not self.endpoint:
            return None
        ep = self.endpoint
        if "://" not in ep:
            ep = ("http://" if self.insecure else "https://") + ep
        return ep.rstrip("/")

    def uri(self, key: str = "") -> str:
        """``s3://bucket/prefix/key`` (no credentials), for messages and records."""
        path = "/".join(p for p in (self.bucket, self.key_prefix, key) if p)
        return f"s3://{path}"


def _ref(value) -> Mapping[str, str] | None:
    if value is None:
        return None
    if hasattr(value, "model_dump"):
        value = value.model_dump(by_alias=True, exclude_none=True)
    return dict(value)


def credentials(cfg: S3Config, secrets=None) -> dict[str, Any]:
    """s3fs credential arguments, resolved from secret references or the environment."""
    from chute.secrets import resolve_selector

    if cfg.access_key_ref or cfg.secret_key_ref:
        if not (cfg.access_key_ref and cfg.secret_key_ref):
            raise UserError("s3: accessKeySecret and secretKeySecret must be given together")
        creds = {"key": resolve_selector(cfg.access_key_ref, "s3.accessKeySecret", secrets),
                 "secret": resolve_selector(cfg.secret_key_ref, "s3.secretKeySecret", secrets)}
        if cfg.session_token_ref:
            creds["token"] = resolve_selector(cfg.session_token_ref, "s3.sessionTokenSecret",
                                              secrets)
        return creds
    env = os.environ
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        creds = {"key": env["AWS_ACCESS_KEY_ID"], "secret": env["AWS_SECRET_ACCESS_KEY"]}
        if env.get("AWS_SESSION_TOKEN"):
            creds["token"] = env["AWS_SESSION_TOKEN"]
        return creds
    if cfg.use_sdk_creds:
        return {}
    return {"anon": True}


class S3Backend:
    """Artifacts as objects in one bucket under an optional key prefix."""

    def __init__(self, cfg: S3Config, secrets=None):
        import s3fs  # imported here: the local repository must not pay for botocore

        self.cfg = cfg
        self.uri = cfg.uri()
        url = cfg.endpoint_url()
        if url:
            from urllib.parse import urlsplit

            parts = urlsplit(url)
            check_host(parts.hostname or "", parts.port, "s3.endpoint")
        creds = credentials(cfg, secrets)
        self._secrets = [v for k, v in creds.items() if k in ("key", "secret", "token") and v]
        client_kwargs: dict[str, Any] = {"region_name": cfg.region or "us-east-1"}
        if url:
            client_kwargs["endpoint_url"] = url
        # CompleteMultipartUpload of a large object can take minutes before the server
        # answers (AWS documents this; moto assembles it in memory): a short read timeout
        # would retry a completion that already happened and fail on the retry.
        config_kwargs: dict[str, Any] = {"retries": {"max_attempts": 3, "mode": "standard"},
                                         "connect_timeout": CONNECT_TIMEOUT,
                                         "read_timeout": READ_TIMEOUT}
        if cfg.addressing_style:
            config_kwargs["s3"] = {"addressing_style": cfg.addressing_style}
        self.fs = s3fs.S3FileSystem(
            **creds, client_kwargs=client_kwargs, config_kwargs=config_kwargs,
            use_listings_cache=False, skip_instance_cache=True, default_block_size=READ_BLOCK)
        if cfg.create_bucket:
            with self._errors(""):
                if not self.fs.exists(cfg.bucket):
                    self.fs.mkdir(cfg.bucket)

    def describe(self, key: str = "") -> str:
        """Where ``key`` lives, for messages."""
        return self.cfg.uri(key)

    def _path(self, key: str) -> str:
        key = safe_key(key) if key else ""
        return "/".join(p for p in (self.cfg.bucket, self.cfg.key_prefix, key) if p)

    def _scrub(self, text: str) -> str:
        for s in self._secrets:
            text = text.replace(s, "***")
        return text

    @contextlib.contextmanager
    def _errors(self, key: str):
        """Turn s3fs/botocore errors into chute errors naming the key, never a secret."""
        where = self.describe(key)
        try:
            yield
        except UserError:
            raise
        except FileNotFoundError:
            raise NotFoundError(f"artifact not found: {where}") from None
        except PermissionError as exc:
            raise UserError(self._scrub(
                f"access denied to {where} ({exc}): check the repository credentials")) from None
        except Exception as exc:  # noqa: BLE001 - botocore, aiohttp and OSError variants
            name = type(exc).__name__
            raise UserError(self._scrub(f"S3 error on {where}: {name}: {exc}")) from None

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        """A stream into ``key``; the multipart upload completes only on a clean exit."""
        path = self._path(key)
        with self._errors(key):
            f = self.fs.open(path, "wb", block_size=PART_SIZE)
        try:
            yield f
        except BaseException:
            with contextlib.suppress(Exception):
                f.discard()  # abort the multipart upload: nothing becomes visible
            f.closed = True
            raise
        with self._errors(key):
            f.close()

    def put_file(self, src, key: str, link: bool = False) -> str:
        """Upload the file ``src`` to ``key``."""
        with open(src, "rb") as s, self.writer(key) as w:
            while chunk := s.read(PART_SIZE):
                w.write(chunk)
        return "upload"

    def put_tree(self, src, key: str, link: bool = False) -> None:
        """Upload every file under the directory ``src`` below ``key``."""
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames.sort()
            rel = os.path.relpath(dirpath, src)
            for name in sorted(filenames):
                p = os.path.join(dirpath, name)
                if os.path.isfile(p) and not os.path.islink(p):
                    sub = name if rel == "." else f"{rel}/{name}"
                    self.put_file(p, f"{key}/{sub}")

    @contextlib.contextmanager
    def reader(self, key: str) -> Iterator[BinaryIO]:
        """The object at ``key`` opened for streaming reads."""
        with self._errors(key):
            f = self.fs.open(self._path(key), "rb", block_size=READ_BLOCK,
                             cache_type="readahead")
        with f:
            yield _ErrorMappingReader(f, self, key)

    def get_file(self, key: str, dest, link: bool = False) -> str:
        """Download the object at ``key`` to the new path ``dest`` in one streaming GET
        (sequential: memory stays flat, and no ranged re-reads of the object)."""
        with self._errors(key):
            self.fs.get_file(self._path(key), str(dest), max_concurrency=1)
        return "download"

    def info(self, key: str) -> tuple[int, bool] | None:
        """``(size, is_dir)`` of ``key``, or None if nothing is stored there."""
        path = self._path(key)
        with self._errors(key):
            try:
                st = self.fs.info(path)
            except FileNotFoundError:
                return None
            if st.get("type") == "directory":
                found = self.fs.find(path, detail=True)
                if not found:
                    return None
                return sum(int(v.get("size") or 0) for v in found.values()), True
            return int(st.get("size") or 0), False

    def list(self, prefix: str = "") -> Iterator[tuple[str, int]]:
        """``(key, size)`` of every object under ``prefix``, sorted."""
        base = self._path("")
        with self._errors(prefix):
            found = self.fs.find(self._path(prefix), detail=True)
        for name in sorted(found):
            rel = name[len(base) + 1:] if name.startswith(base + "/") else name
            yield rel, int(found[name].get("size") or 0)

    def delete(self, prefix: str) -> tuple[int, int]:
        """Remove the object or every object under ``prefix``; ``(count, bytes)``."""
        found = list(self.list(prefix))
        if found:
            with self._errors(prefix):
                self.fs.rm([self._path(k) for k, _ in found])
        return len(found), sum(s for _, s in found)


    def abort_stale_uploads(self, older_than: float = 86400.0) -> int:
        """Abort incomplete multipart uploads under the prefix (left by killed writers)
        started more than ``older_than`` seconds ago; return how many."""
        import datetime as dt

        prefix = self._path("")[len(self.cfg.bucket) + 1:]
        now = dt.datetime.now(dt.UTC)
        n = 0
        with self._errors(""):
            for up in self.fs.list_multipart_uploads(self.cfg.bucket):
                key, started = up.get("Key", ""), up.get("Initiated")
                if prefix and not key.startswith(prefix + "/"):
                    continue
                if started is not None and (now - started).total_seconds() < older_than:
                    continue
                self.fs.abort_mpu(self.cfg.bucket, key, up["UploadId"])
                n += 1
        return n


class _ErrorMappingReader:
    """Wraps an s3fs file so errors while streaming are chute errors too."""

    def __init__(self, f, backend: S3Backend, key: str):
        self._f, self._b, self._key = f, backend, key

    def read(self, n: int = -1) -> bytes:
        with self._b._errors(self._key):
            return self._f.read(n)

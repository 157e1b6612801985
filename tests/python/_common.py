"""Helpers shared by the test scripts: where stores and granules live, and how to reach them.

A location is a local path, a file:// URL or an s3://bucket/prefix URL. S3 locations use
the standard AWS environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_REGION), which is how the Rust tests point these scripts at their moto server.
Works with icechunk 1.x (spec v1) and 2.x alike.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from urllib.parse import urlparse

# Take no HDF5 file locks: a granule may still be locked through a descriptor that some
# other process inherited from its writer, which makes a locking reader fail.
os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")

import icechunk  # noqa: E402

ICECHUNK_MAJOR = int(icechunk.__version__.split(".")[0])


def fail(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def json_stdout():
    """A stream on the real stdout for the script's JSON; fd 1 is pointed at stderr, so
    native logging (icechunk 1.x prints its warnings on stdout) cannot corrupt it."""
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    return out


def exit_now(code: int, *streams) -> None:
    """Flush and leave without interpreter teardown: icechunk 1.x (with zarr's event-loop
    thread) aborts with SIGABRT at exit about one run in ten, after all work is done."""
    for s in (*streams, sys.stdout, sys.stderr):
        try:
            s.flush()
        except Exception:
            pass
    os._exit(code)


def run_check(main) -> None:
    """Run a check's `main`: a crash exits 3, so it never looks like a plain mismatch (1)."""
    try:
        main()
    except SystemExit:
        raise
    except BaseException:
        import traceback

        traceback.print_exc()
        exit_now(3)


def to_url(location: str) -> str:
    """Canonical URL of a granule: file:///abs/path or s3://bucket/key."""
    if location.startswith(("s3://", "file://")):
        return location
    return Path(location).resolve().as_uri()


def s3_env() -> dict:
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return {
        "endpoint": endpoint,
        "region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-west-2",
        "key": os.environ.get("AWS_ACCESS_KEY_ID"),
        "secret": os.environ.get("AWS_SECRET_ACCESS_KEY"),
        "token": os.environ.get("AWS_SESSION_TOKEN"),
    }


def split_s3(url: str) -> tuple[str, str]:
    u = urlparse(url)
    return u.netloc, u.path.lstrip("/")


def open_storage(location: str):
    """icechunk Storage for a local directory or s3://bucket/prefix."""
    if location.startswith("s3://"):
        bucket, prefix = split_s3(location)
        env = s3_env()
        kwargs = dict(bucket=bucket, prefix=prefix, region=env["region"])
        if env["endpoint"]:
            kwargs.update(endpoint_url=env["endpoint"], allow_http=env["endpoint"].startswith("http://"),
                          force_path_style=True)
        if env["key"]:
            kwargs.update(access_key_id=env["key"], secret_access_key=env["secret"],
                          session_token=env["token"])
        else:
            kwargs.update(anonymous=True)
        return icechunk.s3_storage(**kwargs)
    path = location[len("file://"):] if location.startswith("file://") else location
    return icechunk.local_filesystem_storage(str(Path(path).resolve()))


def chunk_container(prefix: str):
    """A virtual chunk container for granules under `prefix` (file:///dir/ or s3://bucket/dir/)."""
    if prefix.startswith("s3://"):
        env = s3_env()
        kwargs = dict(region=env["region"])
        if env["endpoint"]:
            kwargs.update(endpoint_url=env["endpoint"], allow_http=env["endpoint"].startswith("http://"),
                          force_path_style=True)
        store = icechunk.s3_store(**kwargs)
    else:
        store = icechunk.local_filesystem_store(prefix[len("file://"):])
    return icechunk.VirtualChunkContainer(prefix, store)


def container_credentials(prefixes):
    """Authorize reading virtual chunks under every prefix (S3 ones with the env's keys)."""
    creds = {}
    for p in prefixes:
        if p.startswith("s3://"):
            env = s3_env()
            if env["key"]:
                creds[p] = icechunk.s3_static_credentials(
                    access_key_id=env["key"], secret_access_key=env["secret"], session_token=env["token"])
            else:
                creds[p] = icechunk.s3_anonymous_credentials()
        elif ICECHUNK_MAJOR >= 2:
            creds[p] = icechunk.Credentials.LocalFileSystemAccess()
        else:
            creds[p] = None
    return icechunk.containers_credentials(creds)


def open_repo(location: str):
    """Open an existing repository, authorizing all of its virtual chunk containers."""
    storage = open_storage(location)
    config = icechunk.Repository.fetch_config(storage)
    prefixes = []
    if config is not None and config.virtual_chunk_containers:
        prefixes = list(config.virtual_chunk_containers.keys())
    return icechunk.Repository.open(storage, authorize_virtual_chunk_access=container_credentials(prefixes))


def object_store_registry(urls):
    """An obstore registry that can read every granule URL (VirtualiZarr 2.x)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            from obspec_utils.registry import ObjectStoreRegistry
        except ImportError:
            from virtualizarr.registry import ObjectStoreRegistry
    from obstore.store import LocalStore, S3Store

    stores = {}
    for url in urls:
        if url.startswith("s3://"):
            bucket, _ = split_s3(url)
            key = f"s3://{bucket}"
            if key not in stores:
                env = s3_env()
                kwargs = dict(region=env["region"])
                if env["endpoint"]:
                    kwargs.update(endpoint=env["endpoint"], virtual_hosted_style_request=False)
                if env["key"]:
                    kwargs.update(access_key_id=env["key"], secret_access_key=env["secret"])
                    if env["token"]:
                        kwargs.update(session_token=env["token"])
                else:
                    kwargs.update(skip_signature=True)
                client_options = {"allow_http": True} if (env["endpoint"] or "").startswith("http://") else None
                stores[key] = S3Store(bucket, client_options=client_options, **kwargs)
        else:
            stores.setdefault("file://", LocalStore())
    return ObjectStoreRegistry(stores)


def common_prefix(urls) -> str:
    """The longest directory prefix (ending in '/') shared by all URLs."""
    prefix = os.path.commonprefix([u.rsplit("/", 1)[0] + "/" for u in urls])
    return prefix[: prefix.rfind("/") + 1]

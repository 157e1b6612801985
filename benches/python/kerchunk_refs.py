"""Index one granule on S3 the way Python users do today: kerchunk's SingleHdf5ToZarr
over an s3fs file, every setting at its default (s3fs block size and cache type,
kerchunk's inline threshold).

    kerchunk_refs.py s3://bucket/key ENDPOINT_URL OUT.json

Writes the Kerchunk reference file to OUT.json and one JSON line to stdout: seconds
spent opening and translating (after imports), versions and the s3fs settings used.
Credentials and region come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_REGION.
Used by benches/refs.rs, which counts the requests in a proxy and the peak RSS itself.
"""

import json
import os
import sys
import time

import fsspec
import h5py
import kerchunk
import s3fs
from kerchunk.hdf import SingleHdf5ToZarr


def main() -> None:
    url, endpoint, out = sys.argv[1:4]
    start = time.perf_counter()
    fs = s3fs.S3FileSystem(
        key=os.environ["AWS_ACCESS_KEY_ID"],
        secret=os.environ["AWS_SECRET_ACCESS_KEY"],
        client_kwargs={
            "endpoint_url": endpoint,
            "region_name": os.environ.get("AWS_REGION", "us-west-2"),
        },
    )
    with fs.open(url, "rb") as f:
        refs = SingleHdf5ToZarr(f, url).translate()
        block_size = f.blocksize
        cache = type(f.cache).__name__
    seconds = time.perf_counter() - start
    with open(out, "w") as fh:
        json.dump(refs, fh)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "kerchunk": kerchunk.__version__,
                "s3fs": s3fs.__version__,
                "fsspec": fsspec.__version__,
                "h5py": h5py.__version__,
                "hdf5": h5py.version.hdf5_version,
                "block_size": block_size,
                "cache": cache,
            }
        )
    )


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""moto's server, reading only the requested bytes for a ranged GET.

    moto_server.py -H 127.0.0.1 -p PORT        (the arguments of `python -m moto.server`)

moto 5 answers a ranged GetObject by reading the whole object, then slicing it: about
0.1 s per request on a 63 MB granule, which makes a full-size day's chunk-by-chunk reads
(a reader of the store, materialize, validation) take minutes. Here, while moto handles
a GET with a Range header, an object's `value` is a view that reads only the slice moto
takes of it. Everything else is moto as released: the protocol, the headers, the errors
(an unsatisfiable range is still moto's 416). A request whose range moto ends up not
slicing (several ranges, say) gets the whole object, as before.
"""

from __future__ import annotations

import sys
import threading

from moto.s3.models import FakeKey
from moto.s3.responses import S3Response

_request = threading.local()
_plain_value = FakeKey.value


class RangeView:
    """An object's bytes, read only as far as they are sliced."""

    def __init__(self, key: FakeKey):
        self.key = key

    def __len__(self) -> int:
        return self.key.size

    def __bool__(self) -> bool:
        return self.key.size > 0

    def __getitem__(self, s: slice) -> bytes:
        if not isinstance(s, slice) or s.step not in (None, 1):
            return _plain_value.fget(self.key)[s]
        start, stop, _ = s.indices(self.key.size)
        with self.key.lock:
            self.key._value_buffer.seek(start)
            return self.key._value_buffer.read(max(0, stop - start))

    def whole(self) -> bytes:
        return _plain_value.fget(self.key)


def _value(self: FakeKey):
    if getattr(_request, "ranged", False):
        return RangeView(self)
    return _plain_value.fget(self)


FakeKey.value = property(_value, _plain_value.fset)
_plain_key_response = S3Response.key_response


def _key_response(self, request, full_url, headers):
    _request.ranged = request.method == "GET" and bool(request.headers.get("range"))
    try:
        status, out_headers, body = _plain_key_response(self, request, full_url, headers)
    finally:
        _request.ranged = False
    if isinstance(body, RangeView):
        body = body.whole()
    return status, out_headers, body


S3Response.key_response = _key_response

if __name__ == "__main__":
    from moto.server import main

    sys.exit(main(sys.argv[1:]))

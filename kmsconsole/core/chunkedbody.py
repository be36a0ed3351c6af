"""Request bodies sent with `Transfer-Encoding: chunked` and no Content-Length, made visible to Django.

granian de-chunks such a body into `wsgi.input` but, having no length to give, sets no CONTENT_LENGTH (it drops a
Content-Length sent beside the chunked coding, too). Django's WSGIRequest trusts CONTENT_LENGTH, a missing one
meaning 0, and reads nothing: every interface saw an empty body (a signed KMS request failed its signature, a REST
POST ran as if it had no body at all, whatever its size).

So at the WSGI edge, in front of every interface, such a body is read into memory, at most one byte more than the
largest body its interface accepts, and handed on with CONTENT_LENGTH set to what was read. A body over that limit
then arrives with a length over the interface's limit, which refuses it as it refuses any oversized body, in its
own format. A Content-Length beside a chunked coding is ignored: the coding frames the body (RFC 9112, 6.3).
Requests without a transfer coding pass untouched, at the cost of one lookup.

granian ends `wsgi.input` early, with no error, when the client goes away or breaks the chunk framing: such a body
arrives cut short. The signature refuses a cut KMS body; a cut JSON body fails to parse.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings

from kmsconsole.awskms.wsgi import is_kms_request

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

UNREADABLE = b"The request body could not be read.\n"


def largest_accepted_body(environ: dict[str, Any]) -> int:
    """The largest body the request's interface accepts: KMS_MAX_REQUEST_BYTES on the KMS endpoint, else Django's
    DATA_UPLOAD_MAX_MEMORY_SIZE (the REST API's JSON parser and the console's forms). With no Django limit (None),
    a chunked body is still read only up to the KMS endpoint's."""
    kms_limit: int = settings.KMS_MAX_REQUEST_BYTES
    if is_kms_request(environ):
        return kms_limit
    return max(kms_limit, settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0)


def is_chunked(environ: dict[str, Any]) -> bool:
    """Whether the body comes chunked: then its transfer coding, not a Content-Length beside it, frames it (RFC 9112,
    6.3; chunked is the last coding applied when it is used at all, 6.1)."""
    codings = environ.get("HTTP_TRANSFER_ENCODING")
    return bool(codings) and codings.rsplit(",", 1)[-1].strip().lower() == "chunked"


def read_bounded(stream: Any, limit: int) -> bytes:
    """Up to `limit` bytes of `stream`, fewer only at its end (a WSGI stream may return less than asked)."""
    buffer = io.BytesIO()
    remaining = limit
    while remaining > 0:
        data = stream.read(remaining)
        if not data:
            break
        buffer.write(data)
        remaining -= len(data)
    return buffer.getvalue()


def with_chunked_bodies_read(application: WSGIApp) -> WSGIApp:
    """`application`, given chunked request bodies with their length (see the module's docstring)."""

    def read_then_dispatch(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if is_chunked(environ):
            try:
                body = read_bounded(environ["wsgi.input"], largest_accepted_body(environ) + 1)
            except OSError:
                # What Django answers for a body it cannot read (UnreadablePostError), rather than a server error.
                start_response(
                    "400 Bad Request",
                    [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(UNREADABLE)))],
                )
                return [UNREADABLE]
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        return application(environ, start_response)

    return read_then_dispatch

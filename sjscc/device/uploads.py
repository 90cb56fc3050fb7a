"""The ``image`` field: sent as a plain multipart value (no filename), its bytes as the client sent them; missing,
the answer that says so.

OpenAPI's ``format: binary`` multipart property may be sent with or without a filename, and clients do both
(schemathesis, ``curl -F image=<file``, hand-built forms). Starlette keeps a part without a filename as text:
decoded with the form's charset (UTF-8 unless the ``Content-Type`` names another), or as Latin-1 when that
fails. :func:`plain_value_bytes` undoes that decoding, so the picture reaches the same decoder as a file
upload (a non-picture gets the usual 415). Exact for every value that is not valid text in the charset,
which is every real picture; a text value is refused as "not an image" whichever way it is read.
Starlette caps such a part at 1 MiB (larger pictures must be file uploads).
"""

from __future__ import annotations

import codecs
import io

from fastapi import UploadFile
from starlette.datastructures import Headers


def form_charset(content_type: str) -> str:
    """The charset Starlette decodes plain form values with: the ``charset`` parameter, else UTF-8."""
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.strip().partition("=")
        if name.strip().lower() == "charset":
            try:
                return codecs.lookup(value.strip().strip('"')).name
            except LookupError:
                return "latin-1"  # Starlette's own fallback for a charset it does not know
    return "utf-8"


def plain_value_bytes(value: str, charset: str = "utf-8") -> bytes:
    """The bytes that Starlette decoded into ``value`` (with ``charset``, or Latin-1 where that failed)."""
    try:
        as_latin1 = value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode(charset, errors="replace")  # only the charset's decoding gives characters past U+00FF
    try:
        as_latin1.decode(charset)
    except UnicodeDecodeError:
        return as_latin1  # not text in the charset: Starlette's Latin-1 fallback, undone exactly
    return value.encode(charset, errors="replace")


def plain_value_upload(value: str, content_type: str) -> UploadFile:
    """A plain form value as the file upload it stands for (no filename, no part content type)."""
    data = plain_value_bytes(value, form_charset(content_type))
    return UploadFile(io.BytesIO(data), size=len(data), headers=Headers())


def missing_image(content_type: str) -> tuple[int, str, str]:
    """Status, metrics kind and detail for a request without an ``image`` part: 415 when the body is no form."""
    if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        return 415, "not_multipart", (f"the body must be multipart/form-data with a field 'image', "
                                      f"not {content_type[:80] or 'a body without a content type'}")
    return 400, "missing_image", "multipart form field 'image' is required (a file upload, sent as multipart/form-data)"

"""A body larger than the upload limit is refused (413, in words) before the app reads any of it: by
Content-Length, or for a chunked body as soon as the bytes pass the limit. Against a real daphne
started with MAX_UPLOAD_BYTES=1024. (Daphne itself takes the whole body in, spooled to a temporary
file, before the ASGI app is called; the guard keeps it out of Django and out of memory.)"""

from __future__ import annotations

import json
import socket
from urllib.parse import urlparse

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def raw(url: str, head: str, body_chunks=()) -> tuple[int, str]:
    """Send a raw HTTP/1.1 request (head, then chunks as given) and return (status, body text)."""
    where = urlparse(url)
    with socket.create_connection((where.hostname, where.port), timeout=10) as sock:
        sock.sendall(head.encode())
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server already answered and closed: that is the point
        reply = b""
        while b"\r\n\r\n" not in reply or len(reply.split(b"\r\n\r\n", 1)[1]) < _length(reply):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    head_text, _, body = reply.partition(b"\r\n\r\n")
    return int(head_text.split()[1]), body.decode(errors="replace")


def _length(reply: bytes) -> int:
    for line in reply.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


@pytest.fixture
def small_limit_url(server_pool) -> str:
    return server_pool.get(MAX_UPLOAD_BYTES="1024")


def test_a_declared_oversized_body_is_refused_before_the_app_reads_it(small_limit_url):
    host = urlparse(small_limit_url).netloc
    head = (f"POST /api/v1/datanets/legal-qa/uploads/ HTTP/1.1\r\nHost: {host}\r\n"
            "Content-Type: application/octet-stream\r\nContent-Length: 3300000\r\n\r\n")  # fmt: skip
    status, body = raw(small_limit_url, head, [b"x" * 3_300_000])
    assert status == 413  # not 401: no view, no authentication, nothing of Django ran
    assert json.loads(body)["detail"] == "The request is 3,300,000 bytes; the limit is 1,024 bytes per upload."


def test_a_chunked_body_is_cut_off_at_the_limit(small_limit_url):
    host = urlparse(small_limit_url).netloc
    head = f"POST /datanets/legal-qa/contribute/ HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunks = [b"10000\r\n" + b"x" * 0x10000 + b"\r\n"] * 50 + [b"0\r\n\r\n"]  # 3.3 MB, no length given
    status, body = raw(small_limit_url, head, chunks)
    assert status == 413 and "the limit is 1,024 bytes per upload" in body


def test_bodies_under_the_limit_pass(small_limit_url):
    host = urlparse(small_limit_url).netloc
    status, _ = raw(small_limit_url, f"GET /healthz/ HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
    assert status == 200


def test_a_malformed_form_body_is_answered_by_the_app_in_words(live_url, user, make_datanet):
    """daphne's Twisted would answer a multipart body it cannot parse itself (an empty 400); it is left to
    Django, which answers with the field at fault."""
    from accounts.services import create_api_key

    datanet = make_datanet(owner=user)
    _, key = create_api_key(user, "k")
    host, body = urlparse(live_url).netloc, b"--b0undary--\r\n"
    head = (f"POST /api/v1/datanets/{datanet.slug}/uploads/ HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: multipart/form-data; boundary=b0undary\r\nContent-Length: {len(body)}\r\n\r\n")  # fmt: skip
    status, text = raw(live_url, head, [body])
    assert status == 400 and json.loads(text) == {"file": ["No file was submitted."]}

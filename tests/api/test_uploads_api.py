"""Uploads over HTTP: one contract suite, run against local storage (a temp DATA_DIR) and S3 (moto's server).

Every test asks the storage itself what it holds (files on disk, objects and pending multipart uploads in the
bucket), so "nothing stored" is checked where it matters, not through the API.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from starlette.testclient import TestClient

from api.app import create_app
from core.clock import FakeClock
from core.settings import Settings
from node.runtime import open_primary
from tests.conftest import make_settings
from tests.s3server import create_bucket, s3_client, s3_endpoint  # noqa: F401
from tests.support.accounts import User, register
from tests.support.errors import assert_error
from tests.support.files import KB, PNG, SAMPLES, body_of

# Every test here that opens the primary runs twice: on an embedded file and on a real libSQL server.
DATABASES = ("local", "remote")

UPLOAD_KEYS = {"id", "url", "content_type", "size", "sha256"}
META_KEYS = UPLOAD_KEYS | {"created_at"}
PRESIGN_KEYS = {"file_id", "upload_url", "method", "headers", "expires_in"}
Json = dict[str, Any]


HTML = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>\n" * 50


@dataclass
class Env:
    backend: str
    client: TestClient
    settings: Settings
    bucket: str = ""
    endpoint: str = ""

    def stored(self) -> list[str]:
        """Everything physically in storage: files under the uploads dir; objects and unfinished S3 uploads."""
        if self.backend == "local":
            root = self.settings.data_dir / "uploads"
            return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []
        s3 = s3_client(self.endpoint)
        objects = [o["Key"] for o in s3.list_objects_v2(Bucket=self.bucket).get("Contents", [])]
        pending = [f"pending:{u['Key']}" for u in s3.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])]
        return sorted(objects + pending)

    def location(self, key: str) -> str:
        """Where storage keeps the object with this key, in `stored()` terms."""
        return f"{key[:2]}/{key}" if self.backend == "local" else key

    def upload_rows(self) -> list[tuple[Any, ...]]:
        conn = open_primary(self.settings)
        try:
            rows = conn.execute("SELECT id, status, storage_key, original_name FROM rm_uploads").fetchall()
            return [tuple(r) for r in rows]
        finally:
            conn.close()

    def fetch(self, url: str, user: User) -> httpx.Response:
        """Download from a metadata `url`: the API (with the user's token) or a presigned S3 URL (without)."""
        if self.backend == "local":
            return self.client.get(url, headers=user.headers)
        with httpx.Client(timeout=10) as plain:
            return plain.get(url)


@pytest.fixture(params=["local", "s3"])
def env(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Env]:
    overrides: dict[str, object] = {"MAX_UPLOAD_MB": 1}
    bucket = endpoint = ""
    if request.param == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        _, bucket = create_bucket(endpoint)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        overrides |= {
            "STORAGE_BACKEND": "s3",
            "S3_ENDPOINT_URL": endpoint,
            "S3_BUCKET_UPLOADS": bucket,
            "AWS_REGION": "us-east-1",
        }
    settings = make_settings(tmp_path, **overrides)
    with TestClient(create_app(settings, clock), raise_server_exceptions=False) as client:
        yield Env(request.param, client, settings, bucket, endpoint)


@pytest.fixture
def uma(env: Env) -> User:
    return register(env.client, "freelancer")


@pytest.fixture
def other(env: Env) -> User:
    return register(env.client, "freelancer")


def post_file(env: Env, user: User, data: bytes, name: str = "photo.png", claimed: str = "image/png") -> Any:
    return env.client.post("/api/uploads", files={"file": (name, data, claimed)}, headers=user.headers)


def uploaded(env: Env, user: User, data: bytes = PNG, **kwargs: Any) -> Json:
    response = post_file(env, user, data, **kwargs)
    assert response.status_code == 201, response.text
    body: Json = response.json()
    return body


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def presign(env: Env, user: User, data: bytes, content_type: str, name: str = "scan.pdf") -> Any:
    body = {"filename": name, "content_type": content_type, "size": len(data)}
    return env.client.post("/api/uploads/presign", json=body, headers=user.headers)


def put_presigned(env: Env, ticket: Json, data: bytes) -> httpx.Response:
    """What a browser does with the ticket: a plain PUT, no bearer token (to moto, or to the app for local)."""
    assert ticket["method"] == "PUT"
    if env.backend == "local":
        return env.client.put(ticket["upload_url"], content=data, headers=ticket["headers"])
    with httpx.Client(timeout=10) as plain:
        return plain.put(ticket["upload_url"], content=data, headers=ticket["headers"])


# ------------------------------------------------------------------------------- direct (multipart) uploads


@pytest.mark.parametrize("content_type", sorted(SAMPLES))
def test_each_accepted_type_round_trips(env: Env, uma: User, content_type: str) -> None:
    data = SAMPLES[content_type]

    response = post_file(env, uma, data, name="file.bin", claimed="application/octet-stream")

    assert response.status_code == 201, response.text
    assert response.headers["x-consistency-token"].isdigit()
    body = response.json()
    assert set(body) == UPLOAD_KEYS
    assert (body["content_type"], body["size"], body["sha256"]) == (content_type, len(data), sha(data))
    assert env.stored() == [env.location(body["id"])]

    meta = env.client.get(f"/api/uploads/{body['id']}", headers=uma.headers)
    assert meta.status_code == 200, meta.text
    assert set(meta.json()) == META_KEYS
    assert {k: meta.json()[k] for k in ("id", "content_type", "size", "sha256")} == {
        k: body[k] for k in ("id", "content_type", "size", "sha256")
    }
    assert meta.json()["created_at"].endswith("Z")

    download = env.fetch(meta.json()["url"], uma)
    assert download.status_code == 200, download.text
    assert sha(download.content) == body["sha256"]
    assert download.headers["content-type"].split(";")[0] == content_type


def test_local_download_headers(env: Env, uma: User) -> None:
    pdf = uploaded(env, uma, SAMPLES["application/pdf"], name="cv.pdf", claimed="application/pdf")
    png = uploaded(env, uma, PNG)

    pdf_response = env.client.get(f"/api/uploads/{pdf['id']}/content", headers=uma.headers, follow_redirects=False)
    png_response = env.client.get(f"/api/uploads/{png['id']}/content", headers=uma.headers, follow_redirects=False)

    if env.backend == "s3":  # S3 hands out a short-lived presigned GET instead of relaying the bytes
        assert pdf_response.status_code == 307
        assert urlsplit(pdf_response.headers["location"]).netloc == urlsplit(env.endpoint).netloc
        return
    assert pdf_response.status_code == 200
    assert pdf_response.headers["content-disposition"].startswith("attachment;")
    assert pdf_response.headers["x-content-type-options"] == "nosniff"
    assert pdf_response.headers["content-length"] == str(pdf["size"])
    assert png_response.headers["content-disposition"].startswith("inline;")
    assert png_response.headers["content-type"] == "image/png"
    assert "default-src 'none'" in png_response.headers["content-security-policy"]


def test_the_type_comes_from_the_bytes_not_the_name_or_claim(env: Env, uma: User) -> None:
    body = uploaded(env, uma, SAMPLES["image/gif"], name="report.pdf", claimed="application/pdf")

    assert body["content_type"] == "image/gif"


@pytest.mark.parametrize(
    "data",
    [HTML, b"", b"\x89PN", b"GIF87", b"plain text that is long enough to be sniffed properly" * 10],
    ids=["html", "empty", "short-png-prefix", "short-gif-prefix", "text"],
)
def test_wrong_content_is_415_and_nothing_is_stored(env: Env, uma: User, data: bytes) -> None:
    assert_error(post_file(env, uma, data, name="cat.png", claimed="image/png"), 415, "unsupported_media_type")

    assert env.stored() == []
    assert env.upload_rows() == []


def test_too_large_is_413_and_nothing_is_stored(env: Env, uma: User) -> None:
    data = body_of(PNG[:16], 1536 * KB)  # MAX_UPLOAD_MB=1

    assert_error(post_file(env, uma, data), 413, "payload_too_large")

    assert env.stored() == []
    assert env.upload_rows() == []


def test_too_large_without_content_length_is_caught_while_streaming(env: Env, uma: User) -> None:
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()

    def chunked() -> Iterator[bytes]:  # no Content-Length: the server must count as the bytes come
        yield head + PNG[:16]
        for _ in range(24):
            yield os.urandom(64 * KB)
        yield f"\r\n--{boundary}--\r\n".encode()

    response = env.client.post(
        "/api/uploads",
        content=chunked(),
        headers={**uma.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )

    assert_error(response, 413, "payload_too_large")
    assert env.stored() == []


def test_one_byte_over_the_limit_is_413_after_storage_began_and_nothing_is_kept(env: Env, uma: User) -> None:
    data = body_of(PNG[:16], 1024 * KB + 1)  # passes the Content-Length pre-check; caught while streaming

    assert_error(post_file(env, uma, data), 413, "payload_too_large")

    assert env.stored() == []
    assert env.upload_rows() == []


def test_exactly_the_limit_is_accepted(env: Env, uma: User) -> None:
    data = body_of(PNG[:16], 1024 * KB)

    assert uploaded(env, uma, data)["size"] == 1024 * KB


def test_a_form_without_a_file_field_is_422(env: Env, uma: User) -> None:
    response = env.client.post(
        "/api/uploads", data={"note": "hi"}, files={"attachment": ("a.png", PNG, "image/png")}, headers=uma.headers
    )

    body = assert_error(response, 422, "validation_failed")
    assert body["errors"][0]["loc"] == ["body", "file"]
    assert env.stored() == []


def test_two_file_fields_are_422_and_nothing_is_stored(env: Env, uma: User) -> None:
    files = [("file", ("a.png", PNG, "image/png")), ("file", ("b.png", PNG, "image/png"))]

    assert_error(env.client.post("/api/uploads", files=files, headers=uma.headers), 422, "validation_failed")
    assert env.stored() == []


def test_other_form_fields_are_ignored(env: Env, uma: User) -> None:
    response = env.client.post(
        "/api/uploads", data={"caption": "me"}, files={"file": ("a.png", PNG, "image/png")}, headers=uma.headers
    )

    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("content_type", "payload"),
    [("application/json", b'{"file": "x"}'), ("image/png", PNG), ("text/plain", b"hello"), (None, PNG)],
)
def test_a_body_that_is_not_multipart_is_415(env: Env, uma: User, content_type: str | None, payload: bytes) -> None:
    headers = {**uma.headers, **({"Content-Type": content_type} if content_type else {})}

    assert_error(env.client.post("/api/uploads", content=payload, headers=headers), 415, "unsupported_media_type")
    assert env.stored() == []


def test_a_multipart_body_cut_short_is_400(env: Env, uma: User) -> None:
    body = b'--xx\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n' + PNG[:1000]

    response = env.client.post(
        "/api/uploads", content=body, headers={**uma.headers, "Content-Type": "multipart/form-data; boundary=xx"}
    )

    assert_error(response, 400, "bad_request")
    assert env.stored() == []


def test_multipart_without_boundary_is_400(env: Env, uma: User) -> None:
    response = env.client.post(
        "/api/uploads", content=b"x", headers={**uma.headers, "Content-Type": "multipart/form-data"}
    )

    assert_error(response, 400, "bad_request")


def test_uploading_needs_a_signed_in_user(env: Env) -> None:
    response = env.client.post("/api/uploads", files={"file": ("a.png", PNG, "image/png")})

    assert_error(response, 401, "unauthenticated")
    assert env.stored() == []


@pytest.mark.parametrize(
    "name", ["../../etc/passwd.png", "..\\..\\windows\\system32\\x.png", "/abs/path.png", ".hidden.png", "a\x00b.png"]
)
def test_file_names_never_influence_the_storage_key(env: Env, uma: User, name: str) -> None:
    body = uploaded(env, uma, PNG, name=name)

    assert env.stored() == [env.location(body["id"])]
    [(upload_id, status, storage_key, original_name)] = env.upload_rows()
    assert (upload_id, status, storage_key) == (body["id"], "stored", body["id"])
    assert "/" not in original_name and "\\" not in original_name and "\x00" not in original_name
    assert not original_name.startswith(".")
    if env.backend == "local":
        everything = [p for p in env.settings.data_dir.rglob("*") if p.is_file()]
        assert not [p for p in everything if "passwd" in p.name or "system32" in str(p)]


def test_the_sanitized_name_keeps_the_last_component(env: Env, uma: User) -> None:
    uploaded(env, uma, PNG, name="../../etc/passwd.png")

    assert env.upload_rows()[0][3] == "passwd.png"


# ------------------------------------------------------------------------------- presigned uploads


@pytest.mark.parametrize("content_type", ["application/pdf", "image/webp"])
def test_presign_put_complete_round_trip(env: Env, uma: User, content_type: str) -> None:
    data = SAMPLES[content_type]

    ticket_response = presign(env, uma, data, content_type)

    assert ticket_response.status_code == 200, ticket_response.text
    ticket = ticket_response.json()
    assert set(ticket) == PRESIGN_KEYS
    assert ticket["headers"]["Content-Type"] == content_type
    assert ticket["expires_in"] > 0
    assert urlsplit(ticket["upload_url"]).scheme == "http"  # absolute, ready to use
    assert ticket["file_id"] not in {r[2] for r in env.upload_rows()}  # pending: nothing stored yet

    put = put_presigned(env, ticket, data)
    assert put.status_code == 200, put.text

    done = env.client.post(f"/api/uploads/{ticket['file_id']}/complete", headers=uma.headers)
    assert done.status_code == 200, done.text
    assert set(done.json()) >= UPLOAD_KEYS
    assert (done.json()["id"], done.json()["sha256"], done.json()["size"]) == (ticket["file_id"], sha(data), len(data))

    meta = env.client.get(f"/api/uploads/{ticket['file_id']}", headers=uma.headers)
    assert meta.status_code == 200, meta.text
    assert (meta.json()["content_type"], meta.json()["sha256"]) == (content_type, sha(data))
    download = env.fetch(meta.json()["url"], uma)
    assert download.status_code == 200
    assert download.content == data
    # The checked bytes live under a key of the server's; the URL's own key holds nothing (anymore).
    [(_, status, storage_key, _)] = env.upload_rows()
    assert status == "stored" and storage_key != ticket["file_id"]
    assert env.stored() == [env.location(storage_key)]


def test_completing_twice_answers_the_same(env: Env, uma: User) -> None:
    ticket = presign(env, uma, PNG, "image/png").json()
    assert put_presigned(env, ticket, PNG).status_code == 200
    first = env.client.post(f"/api/uploads/{ticket['file_id']}/complete", headers=uma.headers)

    second = env.client.post(f"/api/uploads/{ticket['file_id']}/complete", headers=uma.headers)

    assert second.status_code == 200
    assert set(second.json()) == set(first.json()) == UPLOAD_KEYS
    assert {k: second.json()[k] for k in UPLOAD_KEYS - {"url"}} == {k: first.json()[k] for k in UPLOAD_KEYS - {"url"}}


def test_a_pending_upload_is_not_there_yet(env: Env, uma: User) -> None:
    ticket = presign(env, uma, PNG, "image/png").json()

    assert_error(env.client.get(f"/api/uploads/{ticket['file_id']}", headers=uma.headers), 404, "not_found")
    done = env.client.post(f"/api/uploads/{ticket['file_id']}/complete", headers=uma.headers)
    assert_error(done, 422, "validation_failed")


def test_presigned_wrong_content_is_415_and_nothing_is_kept(env: Env, uma: User) -> None:
    fake = HTML[: len(HTML)]
    ticket = presign(env, uma, fake, "image/png", name="cat.png").json()

    put = put_presigned(env, ticket, fake)
    if env.backend == "local":
        assert_error(put, 415, "unsupported_media_type")
    else:  # S3 takes any bytes; the app judges them on completion
        assert put.status_code == 200
        done = env.client.post(f"/api/uploads/{ticket['file_id']}/complete", headers=uma.headers)
        assert_error(done, 415, "unsupported_media_type")

    assert env.stored() == []
    assert [r[1] for r in env.upload_rows()] == ["pending"]


def test_presigned_other_allowed_type_than_announced_is_415(env: Env, uma: User) -> None:
    gif = SAMPLES["image/gif"]
    ticket = presign(env, uma, gif, "image/png").json()

    put = put_presigned(env, ticket, gif)
    if env.backend == "s3":
        assert put.status_code == 200
        put = env.client.post(f"/api/uploads/{ticket['file_id']}/complete", headers=uma.headers)

    assert_error(put, 415, "unsupported_media_type")
    assert env.stored() == []


@pytest.mark.parametrize("delta", [-1000, 1000])
def test_presigned_size_must_match(env: Env, uma: User, delta: int) -> None:
    announced = PNG[:100_000]
    sent = PNG[: 100_000 + delta]
    ticket = presign(env, uma, announced, "image/png").json()

    put = put_presigned(env, ticket, sent)
    if env.backend == "local":
        assert put.status_code == (413 if delta > 0 else 422), put.text
    else:
        assert put.status_code == 200
        done = env.client.post(f"/api/uploads/{ticket['file_id']}/complete", headers=uma.headers)
        assert_error(done, 422, "validation_failed")

    assert env.stored() == []


@pytest.mark.parametrize(
    ("body", "status", "error_type"),
    [
        ({"filename": "a.html", "content_type": "text/html", "size": 10}, 415, "unsupported_media_type"),
        ({"filename": "a.svg", "content_type": "image/svg+xml", "size": 10}, 415, "unsupported_media_type"),
        ({"filename": "a.png", "content_type": "image/png", "size": 1024 * KB + 1}, 413, "payload_too_large"),
        ({"filename": "a.png", "content_type": "image/png", "size": 0}, 422, "validation_failed"),
        ({"filename": "a.png", "content_type": "image/png"}, 422, "validation_failed"),
        ({"filename": "a.png", "content_type": "image/png", "size": 5, "acl": "public"}, 422, "validation_failed"),
    ],
)
def test_presign_refuses_what_could_not_be_accepted(
    env: Env, uma: User, body: Json, status: int, error_type: str
) -> None:
    response = env.client.post("/api/uploads/presign", json=body, headers=uma.headers)

    assert_error(response, status, error_type)
    assert env.upload_rows() == []


def test_presign_needs_json_and_a_signed_in_user(env: Env, uma: User) -> None:
    body = {"filename": "a.png", "content_type": "image/png", "size": 10}
    assert_error(env.client.post("/api/uploads/presign", json=body), 401, "unauthenticated")
    response = env.client.post("/api/uploads/presign", content=b"filename=a.png", headers=uma.headers)
    assert_error(response, 415, "unsupported_media_type")


def test_presign_json_bodies_keep_the_json_size_limit(env: Env, uma: User) -> None:
    big = {"filename": "a" * 1000, "content_type": "image/png", "size": 10, "pad": "x" * (2 * 1024 * KB)}

    response = env.client.post("/api/uploads/presign", json=big, headers=uma.headers)

    assert_error(response, 413, "payload_too_large")


def test_direct_put_checks_its_signature(env: Env, uma: User) -> None:
    if env.backend == "s3":  # S3 checks its own signatures; the app's direct route is for local storage
        ticket = presign(env, uma, PNG, "image/png").json()
        path = f"/api/uploads/direct/{ticket['file_id']}?expires=9999999999&sig={'0' * 64}"
        assert_error(env.client.put(path, content=PNG, headers={"Content-Type": "image/png"}), 403, "forbidden")
        return
    ticket = presign(env, uma, PNG, "image/png").json()
    url = urlsplit(ticket["upload_url"])
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    tampered = [
        {**query, "sig": "0" * 64},
        {**query, "expires": str(int(query["expires"]) + 1)},
        {"expires": query["expires"]},
    ]
    for params in tampered:
        response = env.client.put(f"{url.path}?{urlencode(params)}", content=PNG, headers=ticket["headers"])
        assert response.status_code in (403, 422), response.text
    other_id = presign(env, uma, PNG, "image/png").json()["file_id"]
    response = env.client.put(f"/api/uploads/direct/{other_id}?{url.query}", content=PNG, headers=ticket["headers"])
    assert_error(response, 403, "forbidden")
    wrong_type = env.client.put(ticket["upload_url"], content=PNG, headers={"Content-Type": "image/gif"})
    assert_error(wrong_type, 415, "unsupported_media_type")
    assert env.stored() == []

    assert put_presigned(env, ticket, PNG).status_code == 200
    assert_error(put_presigned(env, ticket, PNG), 409, "invalid_state")
    assert len(env.stored()) == 1


# ------------------------------------------------------------------------------- who sees what


def test_another_users_upload_is_404(env: Env, uma: User, other: User) -> None:
    body = uploaded(env, uma)
    upload_id = body["id"]

    assert_error(env.client.get(f"/api/uploads/{upload_id}", headers=other.headers), 404, "not_found")
    content = env.client.get(f"/api/uploads/{upload_id}/content", headers=other.headers, follow_redirects=False)
    assert_error(content, 404, "not_found")
    done = env.client.post(f"/api/uploads/{upload_id}/complete", headers=other.headers)
    assert_error(done, 404, "not_found")
    assert env.client.get(f"/api/uploads/{upload_id}").status_code == 401


def test_another_users_presigned_upload_cannot_be_completed(env: Env, uma: User, other: User) -> None:
    ticket = presign(env, uma, PNG, "image/png").json()
    assert put_presigned(env, ticket, PNG).status_code == 200

    done = env.client.post(f"/api/uploads/{ticket['file_id']}/complete", headers=other.headers)

    assert_error(done, 404, "not_found")


@pytest.mark.parametrize("upload_id", ["nope", "0" * 32, "../../etc/passwd"])
def test_unknown_uploads_are_404(env: Env, uma: User, upload_id: str) -> None:
    assert env.client.get(f"/api/uploads/{upload_id}", headers=uma.headers).status_code == 404


def test_an_image_a_portfolio_shows_is_visible_to_anyone_signed_in(env: Env, uma: User, other: User) -> None:
    image = uploaded(env, uma)
    assert env.client.get(f"/api/uploads/{image['id']}", headers=other.headers).status_code == 404
    item = env.client.post(
        "/api/portfolio", json={"title": "Logo", "image_url": image["id"]}, headers=uma.headers
    ).json()

    seen = env.client.get(f"/api/uploads/{image['id']}", headers=other.headers)
    assert seen.status_code == 200, seen.text
    assert env.fetch(seen.json()["url"], other).content == PNG

    assert env.client.delete(f"/api/portfolio/{item['id']}", headers=uma.headers).status_code == 204
    assert env.client.get(f"/api/uploads/{image['id']}", headers=other.headers).status_code == 404


# ------------------------------------------------------------------------------- uploads as images


def test_portfolio_and_profile_images_must_be_own_stored_images(env: Env, uma: User, other: User) -> None:
    mine = uploaded(env, uma)["id"]
    theirs = uploaded(env, other)["id"]
    my_pdf = uploaded(env, uma, SAMPLES["application/pdf"], name="cv.pdf")["id"]
    pending = presign(env, uma, PNG, "image/png").json()["file_id"]

    def add(image_url: str) -> Any:
        return env.client.post("/api/portfolio", json={"title": "Work", "image_url": image_url}, headers=uma.headers)

    def profile(image_url: str) -> Any:
        return env.client.put("/api/auth/me", json={"profile_image_url": image_url}, headers=uma.headers)

    for bad in (theirs, my_pdf, pending, "f" * 32):
        for response in (add(bad), profile(bad)):
            body = assert_error(response, 422, "validation_failed")
            assert body["errors"][0]["loc"][-1] in ("image_url", "profile_image_url")
    item = add(mine)
    assert item.status_code == 201, item.text
    assert profile(mine).json()["profile_image_url"] == mine
    revised = env.client.put(f"/api/portfolio/{item.json()['id']}", json={"image_url": theirs}, headers=uma.headers)
    assert_error(revised, 422, "validation_failed")
    assert add("https://img.example.com/a.png").status_code == 201

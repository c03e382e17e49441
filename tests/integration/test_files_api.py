"""The Files API through the official SDK: upload, list (both pagination schemes), metadata, download, delete,
and every error with the SDK's matching exception class."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import anthropic
import pytest
from anthropic.types.file_expired_error import FileExpiredError
from anthropic.types.file_not_downloadable_error import FileNotDownloadableError

from emulator import bash, faults
from emulator.app.files import MULTIPART_OVERHEAD_BYTES
from emulator.state.files import DEFAULT_MAX_FILE_BYTES
from emulator.wire.schemas import default_store

TOOL = {"type": "code_execution_20250825", "name": "code_execution"}
MODEL = "claude-sonnet-4-6"


def schema_problems(ref: str, instance: object) -> list[str]:
    return [error.message for error in default_store().iter_errors(ref, instance)]


def raw(emulator):
    """An httpx2 client speaking to the emulator in-process, authenticated like the SDK."""
    return emulator.http_client(headers={"authorization": "Bearer sk-test"})


def upload(client, name="data.csv", data=b"item,value\napple,30\nbanana,70\n", mime="text/csv", **kw):
    return client.beta.files.upload(file=(name, data, mime), **kw)


def copy_through_container(emulator, client, file_id, name):
    """Reference an upload with `container_upload`, copy it to `$OUTPUT_DIR`, return the output's file id."""
    emulator.add_turn(bash(f'cp "$INPUT_DIR/{name}" "$OUTPUT_DIR/{name}"'))
    message = client.beta.messages.create(
        model=MODEL,
        max_tokens=100,
        tools=[TOOL],
        messages=[{"role": "user", "content": [{"type": "container_upload", "file_id": file_id}]}],
    )
    result = message.content[1].content
    assert result.type == "bash_code_execution_result" and result.return_code == 0, result
    [output] = result.content
    assert output.type == "bash_code_execution_output"
    return output.file_id


def test_upload_metadata_as_the_wire_has_it(code_execution_emulator, anthropic_client):
    uploaded = upload(anthropic_client)
    assert uploaded.id.startswith("file_01") and len(uploaded.id) == len("file_") + 24
    assert (uploaded.type, uploaded.filename, uploaded.mime_type, uploaded.size_bytes) == (
        "file",
        "data.csv",
        "text/csv",
        30,
    )
    assert uploaded.downloadable is False and uploaded.expires_at is None
    assert anthropic_client.beta.files.retrieve_metadata(uploaded.id) == uploaded
    assert anthropic_client.files.retrieve_metadata(uploaded.id).id == uploaded.id  # the non-beta resource

    http = raw(code_execution_emulator)
    body = http.get(f"/v1/files/{uploaded.id}?beta=true").json()
    # key order and millisecond precision of the recordings: `2026-04-12T09:30:21.992000Z`
    assert list(body) == ["id", "type", "filename", "mime_type", "size_bytes", "created_at", "downloadable"]
    assert body["created_at"].endswith("000Z") and len(body["created_at"]) == len(
        "2026-04-12T09:30:21.992000Z"
    )
    assert schema_problems("files.schema.json", body) == []
    page = http.get("/v1/files").json()
    assert list(page) == ["data", "has_more", "first_id", "last_id", "next_page"]
    assert schema_problems("files.schema.json#/$defs/file_list", page) == []
    deleted = http.delete(f"/v1/files/{uploaded.id}").json()
    assert deleted == {"id": uploaded.id, "type": "file_deleted"}
    assert schema_problems("files.schema.json#/$defs/file_deleted", deleted) == []


@pytest.mark.parametrize(
    ("name", "data", "mime"),
    [
        ("notes.txt", "héllo wörld\r\n\ttabs and CRLF\n".encode() * 1000, "text/plain"),
        ("blob.bin", bytes(range(256)) * 4096 + b"\x00\xff", "application/octet-stream"),
        ("empty.dat", b"", "application/octet-stream"),
    ],
    ids=["text", "binary", "empty"],
)
def test_round_trip_through_a_container_is_byte_identical(
    code_execution_emulator, anthropic_client, name, data, mime
):
    uploaded = upload(anthropic_client, name, data, mime)
    assert uploaded.size_bytes == len(data) and uploaded.mime_type == mime
    output_id = copy_through_container(code_execution_emulator, anthropic_client, uploaded.id, name)
    meta = anthropic_client.beta.files.retrieve_metadata(output_id)
    assert (meta.filename, meta.size_bytes, meta.downloadable) == (name, len(data), True)
    assert anthropic_client.beta.files.download(output_id).read() == data
    assert anthropic_client.files.download(output_id).read() == data


def test_download_headers(code_execution_emulator, anthropic_client):
    uploaded = upload(anthropic_client, "numbers and squares.csv", b"Number,Square\n1,1\n")
    output_id = copy_through_container(
        code_execution_emulator, anthropic_client, uploaded.id, "numbers and squares.csv"
    )
    response = raw(code_execution_emulator).get(
        f"/v1/files/{output_id}/content", headers={"accept": "application/binary"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv"
    assert (
        response.headers["content-disposition"] == "attachment; filename*=utf-8''numbers%20and%20squares.csv"
    )
    assert response.headers["content-length"] == "18"
    assert response.headers["request-id"].startswith("req_01")
    assert response.content == b"Number,Square\n1,1\n"


def test_pagination_over_250_files_in_both_schemes(code_execution_emulator, anthropic_client):
    uploaded = [upload(anthropic_client, f"f{i:03}.txt", b"%d" % i, "text/plain").id for i in range(250)]
    newest_first = list(reversed(uploaded))

    # SDK 2.13: `limit`/`page`, auto-pagination follows `next_page`
    first_page = anthropic_client.beta.files.list(limit=100)
    assert [f.id for f in first_page.data] == newest_first[:100]
    assert first_page.next_page and first_page.next_page.startswith("page_")
    assert [f.id for f in anthropic_client.beta.files.list(limit=100)] == newest_first
    assert [f.id for f in anthropic_client.files.list(limit=7)] == newest_first
    assert len(list(anthropic_client.beta.files.list())) == 250  # default limit 20, 13 pages

    # 2025: `limit`/`after_id`/`before_id`, read `has_more`/`first_id`/`last_id`
    http = raw(code_execution_emulator)
    seen: list[str] = []
    params: dict[str, object] = {"limit": 100}
    while True:
        page = http.get("/v1/files", params=params).json()
        seen += [f["id"] for f in page["data"]]
        assert page["first_id"] == page["data"][0]["id"] and page["last_id"] == page["data"][-1]["id"]
        if not page["has_more"]:
            break
        params = {"limit": 100, "after_id": page["last_id"]}
    assert seen == newest_first
    assert page["next_page"] is None

    # backwards from the oldest: `before_id` pages are newer files, still listed newest first
    back: list[str] = []
    params = {"limit": 60, "before_id": newest_first[-1]}
    while True:
        page = http.get("/v1/files", params=params).json()
        back = [f["id"] for f in page["data"]] + back
        if not page["has_more"]:
            break
        params = {"limit": 60, "before_id": page["first_id"]}
    assert back == newest_first[:-1]

    # `ids`: one page, unknown and deleted ids silently left out
    anthropic_client.beta.files.delete(uploaded[5])
    picked = anthropic_client.beta.files.list(ids=[uploaded[3], uploaded[5], "file_unknown", uploaded[4]])
    assert [f.id for f in picked.data] == [uploaded[4], uploaded[3]] and picked.next_page is None

    # a cursor naming a deleted file still works
    after_deleted = http.get("/v1/files", params={"limit": 2, "after_id": uploaded[5]}).json()
    assert [f["id"] for f in after_deleted["data"]] == [uploaded[4], uploaded[3]]


def test_list_parameter_errors(code_execution_emulator, anthropic_client):
    http = raw(code_execution_emulator)
    for params, fragment in [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"page": "page_not-a-cursor"}, "page: Invalid page token"),
        ({"page": "nope"}, "page: Invalid page token"),
        ({"after_id": "file_unknown"}, "after_id"),
        ({"after_id": "a", "before_id": "b"}, "cannot be used together"),
    ]:
        response = http.get("/v1/files", params=params)
        assert response.status_code == 400, params
        assert response.json()["error"]["type"] == "invalid_request_error"
        assert fragment in response.json()["error"]["message"]


def test_unknown_file_is_404_everywhere(anthropic_client):
    for call in (
        anthropic_client.beta.files.retrieve_metadata,
        anthropic_client.beta.files.download,
        anthropic_client.beta.files.delete,
    ):
        with pytest.raises(anthropic.NotFoundError) as caught:
            call("file_01NoSuchFileXXXXXXXXXXXX")
        assert caught.value.body["error"] == {
            "type": "not_found_error",
            "message": "File not found: file_01NoSuchFileXXXXXXXXXXXX",
        }
        assert caught.value.request_id.startswith("req_01")


def test_deleted_file_is_gone(anthropic_client):
    uploaded = upload(anthropic_client)
    anthropic_client.beta.files.delete(uploaded.id)
    with pytest.raises(anthropic.NotFoundError):
        anthropic_client.beta.files.retrieve_metadata(uploaded.id)
    with pytest.raises(anthropic.NotFoundError):
        anthropic_client.beta.files.delete(uploaded.id)
    assert list(anthropic_client.beta.files.list()) == []


@pytest.mark.parametrize(
    "name", ["a<b.csv", "a>b", "c:d", "pipe|x", "q?", "star*", "back\\slash", "dir/x.csv", "", "x" * 256]
)
def test_bad_filename_is_400(anthropic_client, name):
    with pytest.raises(anthropic.BadRequestError) as caught:
        upload(anthropic_client, name)
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert caught.value.body["error"]["message"].startswith("file: ")


def test_control_characters_in_filename_are_400(code_execution_emulator):
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a\tb.csv"\r\n'
        f"Content-Type: text/csv\r\n\r\nx\r\n--{boundary}--\r\n"
    ).encode()
    response = raw(code_execution_emulator).post(
        "/v1/files", content=body, headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    assert response.status_code == 400 and "'\\t'" in response.json()["error"]["message"]


def test_longest_allowed_filename_and_unicode(anthropic_client):
    name = "é" * 251 + ".csv"
    assert upload(anthropic_client, name).filename == name


def test_malformed_uploads_are_400(code_execution_emulator):
    http = raw(code_execution_emulator)
    cases = [
        ({"content-type": "application/json"}, b"{}", "multipart/form-data"),
        ({"content-type": "multipart/form-data; boundary=zz"}, b"--zz\r\nbroken", "Malformed multipart"),
        (
            {"content-type": "multipart/form-data; boundary=zz"},
            b'--zz\r\nContent-Disposition: form-data; name="other"\r\n\r\n1\r\n--zz--\r\n',
            "other: Extra inputs are not permitted",
        ),
        (
            {"content-type": "multipart/form-data; boundary=zz"},
            b'--zz\r\nContent-Disposition: form-data; name="expires_in_seconds"\r\n\r\n3600\r\n--zz--\r\n',
            "file: Field required",
        ),
    ]
    for headers, body, fragment in cases:
        response = http.post("/v1/files", content=body, headers=headers)
        assert response.status_code == 400, body
        assert fragment in response.json()["error"]["message"]


@pytest.mark.code_execution_emulator(max_file_bytes=1000)
def test_over_the_size_limit_is_413(code_execution_emulator):
    client = code_execution_emulator.anthropic_client()
    assert upload(client, "ok.bin", b"x" * 1000).size_bytes == 1000
    with pytest.raises(anthropic.ContentTooLargeError) as caught:
        upload(client, "big.bin", b"x" * 1001)
    assert caught.value.status_code == 413
    assert caught.value.body["error"]["type"] == "request_too_large"
    assert [f.filename for f in client.beta.files.list()] == ["ok.bin"]
    assert list(code_execution_emulator.files.incoming_dir.iterdir()) == []  # nothing half-written left


@pytest.mark.code_execution_emulator(max_file_bytes=1000)
def test_413_over_real_http_reaches_the_client(code_execution_emulator):
    """The body is drained after the early answer, so the SDK reads the 413 instead of a reset connection."""
    client = code_execution_emulator.anthropic_client(in_process=False)
    with pytest.raises(anthropic.ContentTooLargeError):
        upload(client, "big.bin", b"x" * (8 * 1024 * 1024))
    with pytest.raises(anthropic.ContentTooLargeError):
        upload(client, "big.bin", b"x" * 5000)  # past the limit while streaming, not by Content-Length


def test_uploads_are_not_downloadable(anthropic_client):
    uploaded = upload(anthropic_client)
    with pytest.raises(FileNotDownloadableError) as caught:
        anthropic_client.beta.files.download(uploaded.id)
    assert isinstance(caught.value, anthropic.BadRequestError)
    assert caught.value.error_code == "file_not_downloadable"
    assert caught.value.body["error"]["details"] == {"error_code": "file_not_downloadable"}


@pytest.mark.code_execution_emulator(manual_clock=True)
def test_expired_files(code_execution_emulator):
    client = code_execution_emulator.anthropic_client()
    http = raw(code_execution_emulator)
    uploaded = upload(client, expires_in_seconds=3600)
    kept = upload(client, "kept.csv")
    # `created_at` has millisecond precision, `expires_at` is exactly an hour after the upload
    assert abs((uploaded.expires_at - uploaded.created_at).total_seconds() - 3600) < 0.001
    output_id = copy_through_container(code_execution_emulator, client, uploaded.id, "data.csv")
    code_execution_emulator.clock.advance(timedelta(seconds=3601))
    # metadata, content and container_upload all give the same 404 `file_expired`
    for call in (
        client.beta.files.retrieve_metadata,
        client.beta.files.download,
        client.files.retrieve_metadata,
    ):
        with pytest.raises(FileExpiredError) as caught:
            call(uploaded.id)
        assert isinstance(caught.value, anthropic.NotFoundError) and caught.value.error_code == "file_expired"
        assert caught.value.body["error"] == {
            "type": "not_found_error",
            "message": f"File has expired: {uploaded.id}",
            "details": {"error_code": "file_expired"},
        }
    with pytest.raises(FileExpiredError):
        client.beta.messages.create(
            model=MODEL,
            max_tokens=10,
            tools=[TOOL],
            messages=[{"role": "user", "content": [{"type": "container_upload", "file_id": uploaded.id}]}],
        )
    # and lists leave it out, in both schemes and by id, while it still works as a cursor
    assert [f.id for f in client.beta.files.list()] == [output_id, kept.id]
    assert [f.id for f in client.beta.files.list(limit=1)] == [output_id, kept.id]  # walks next_page
    listed = http.get("/v1/files", params={"ids": f"{uploaded.id},{kept.id}"}).json()
    assert [f["id"] for f in listed["data"]] == [kept.id]
    older = http.get("/v1/files", params={"limit": 1, "after_id": kept.id}).json()
    assert (older["data"], older["has_more"]) == ([], False)
    newer = http.get("/v1/files", params={"before_id": uploaded.id}).json()
    assert [f["id"] for f in newer["data"]] == [output_id, kept.id]
    assert client.beta.files.download(output_id).read() == b"item,value\napple,30\nbanana,70\n"
    # deleting an expired file is still allowed (clean-up), and then it is simply unknown
    assert client.beta.files.delete(uploaded.id).type == "file_deleted"
    with pytest.raises(anthropic.NotFoundError) as gone:
        client.beta.files.retrieve_metadata(uploaded.id)
    assert gone.value.body["error"]["message"] == f"File not found: {uploaded.id}"


@pytest.mark.code_execution_emulator(manual_clock=True)
def test_page_full_of_expired_files_still_finds_the_live_ones(code_execution_emulator):
    """Expired files are skipped while paging, so a page is never cut short by them."""
    client = code_execution_emulator.anthropic_client()
    live = [upload(client, f"live{i}.csv").id for i in range(3)]
    for i in range(300):  # more than one scan batch of expired files between the live ones and the cursor
        code_execution_emulator.files.add(
            [b"x"],
            filename=f"old{i}.csv",
            mime_type="text/csv",
            downloadable=False,
            expires_at=code_execution_emulator.files.expiry(3600),
        )
    newest = upload(client, "newest.csv").id
    code_execution_emulator.clock.advance(timedelta(hours=2))
    page = raw(code_execution_emulator).get("/v1/files", params={"limit": 2}).json()
    assert ([f["id"] for f in page["data"]], page["has_more"]) == ([newest, live[2]], True)
    assert [f.id for f in client.beta.files.list(limit=2)] == [newest, *reversed(live)]


@pytest.mark.code_execution_emulator(manual_clock=True)
def test_expires_at_has_millisecond_precision_like_created_at(code_execution_emulator):
    code_execution_emulator.clock.set(datetime(2026, 7, 9, 2, 42, 51, 126789, tzinfo=UTC))
    http = raw(code_execution_emulator)
    response = http.post(
        "/v1/files",
        files={"file": ("data.csv", b"a,b\n", "text/csv")},
        data={"expires_in_seconds": "3600"},
    )
    assert response.status_code == 200, response.text
    created = response.json()
    assert (created["created_at"], created["expires_at"]) == (
        "2026-07-09T02:42:51.126000Z",
        "2026-07-09T03:42:51.126000Z",
    )
    listed = http.get(f"/v1/files/{created['id']}").json()
    assert listed["expires_at"] == "2026-07-09T03:42:51.126000Z"
    # the stored moment is the one on the wire: it expires exactly then, not 0.789 ms later
    code_execution_emulator.clock.set(datetime(2026, 7, 9, 3, 42, 51, 126000, tzinfo=UTC))
    assert http.get(f"/v1/files/{created['id']}").status_code == 404


def test_default_size_limit_is_500_decimal_megabytes(code_execution_emulator):
    """The docs' "500 MB" is 500,000,000 bytes: a body declaring more than that (plus the multipart framing)
    is refused before a byte of it is read."""
    assert DEFAULT_MAX_FILE_BYTES == 500_000_000
    assert code_execution_emulator.files.max_file_bytes == 500_000_000
    boundary = "zz"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\nx\r\n--{boundary}--\r\n"
    ).encode()
    declared = 500_000_000 + MULTIPART_OVERHEAD_BYTES + 1  # under 500 MiB: accepted with the old reading

    def chunks():
        yield body

    response = raw(code_execution_emulator).post(
        "/v1/files",
        content=chunks(),
        headers={
            "content-type": f"multipart/form-data; boundary={boundary}",
            "content-length": str(declared),
        },
    )
    assert response.status_code == 413, response.text
    assert response.json()["error"] == {
        "type": "request_too_large",
        "message": "File exceeds the maximum allowed size of 500000000 bytes",
    }


@pytest.mark.parametrize(
    ("value", "fragment"),
    [(3599, "greater than or equal to 3600"), (7_776_001, "less than or equal to 7776000")],
)
def test_expires_in_seconds_range(anthropic_client, value, fragment):
    with pytest.raises(anthropic.BadRequestError) as caught:
        upload(anthropic_client, expires_in_seconds=value)
    assert caught.value.body["error"]["message"] == f"expires_in_seconds: Input should be {fragment}"


def test_auth_applies_to_files(code_execution_emulator):
    http = code_execution_emulator.http_client()
    for method, path in [("GET", "/v1/files"), ("POST", "/v1/files"), ("GET", "/v1/files/file_x/content")]:
        response = http.request(method, path)
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_error"
        assert response.headers["request-id"].startswith("req_01")


def test_faults_target_the_files_endpoints(code_execution_emulator, anthropic_client):
    code_execution_emulator.inject(faults.http_error(529, endpoint="/v1/files"))
    with pytest.raises(anthropic.OverloadedError):
        upload(anthropic_client)
    uploaded = upload(anthropic_client)  # the fault fired once
    code_execution_emulator.inject(faults.http_error(500, endpoint="/v1/files/{file_id}"))
    with pytest.raises(anthropic.InternalServerError):
        anthropic_client.beta.files.retrieve_metadata(uploaded.id)
    code_execution_emulator.inject(faults.http_error(503, match=uploaded.id))
    with pytest.raises(anthropic.APIStatusError) as caught:
        anthropic_client.beta.files.delete(uploaded.id)
    assert caught.value.status_code == 503
    assert anthropic_client.beta.files.delete(uploaded.id).type == "file_deleted"


def test_retried_upload_after_a_fault_succeeds(code_execution_emulator):
    client = code_execution_emulator.anthropic_client(max_retries=2)
    code_execution_emulator.inject(faults.http_error(529, endpoint="/v1/files"))
    assert upload(client).filename == "data.csv"
    assert len(list(client.beta.files.list())) == 1


def test_journal_records_file_requests(code_execution_emulator, anthropic_client):
    uploaded = upload(anthropic_client, expires_in_seconds=7200)
    anthropic_client.beta.files.list()
    entries = code_execution_emulator.requests
    assert [(e.method, e.path, e.status) for e in entries] == [
        ("POST", "/v1/files", 200),
        ("GET", "/v1/files", 200),
    ]
    assert entries[0].body == {
        "file": {"filename": "data.csv", "mime_type": "text/csv", "size_bytes": 30},
        "expires_in_seconds": 7200,
    }
    assert entries[0].response["id"] == uploaded.id
    assert "sk-" not in json.dumps([e.as_dict() for e in entries])


def test_reset_forgets_files(code_execution_emulator, anthropic_client):
    upload(anthropic_client)
    code_execution_emulator.reset()
    assert list(anthropic_client.beta.files.list()) == []
    assert list(code_execution_emulator.files.blobs_dir.iterdir()) == []


def test_sha256_of_uploaded_bytes_is_recorded(code_execution_emulator, anthropic_client):
    data = b"some bytes\n" * 100
    uploaded = upload(anthropic_client, "s.txt", data, "text/plain")
    assert code_execution_emulator.files.get(uploaded.id).sha256 == hashlib.sha256(data).hexdigest()

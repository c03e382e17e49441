"""Files in and out of containers: `container_upload` into `$INPUT_DIR`, files written to `$OUTPUT_DIR` as
downloadable Files API files, and the docs' example flow, through the official SDK."""

from __future__ import annotations

import struct
import zlib

import anthropic
import pytest

from emulator import bash, create, python, text, view

TOOL = {"type": "code_execution_20250825", "name": "code_execution"}
LEGACY_TOOL = {"type": "code_execution_20250522", "name": "code_execution"}
MODEL = "claude-sonnet-4-6"
SAMPLE = (
    "month,revenue,expenses,profit\nJanuary,12500,8200,4300\nFebruary,13800,8500,5300\nMarch,15200,9100,6100\n"
    "April,14100,8800,5300\nMay,16300,9500,6800\nJune,17800,10200,7600\n"
)


def upload(client, name="sample.csv", data=None, mime="text/csv"):
    return client.beta.files.upload(file=(name, SAMPLE.encode() if data is None else data, mime))


def send(client, content, tools=(TOOL,), **extra):
    return client.beta.messages.create(
        model=MODEL,
        max_tokens=1024,
        tools=list(tools),
        messages=[{"role": "user", "content": content}],
        **extra,
    )


def uploads(*file_ids, prompt="Analyze this CSV data"):
    return [{"type": "text", "text": prompt}, *({"type": "container_upload", "file_id": f} for f in file_ids)]


def result_of(message, index=1):
    return message.content[index].content


# --- container_upload --------------------------------------------------------------------------------------


def test_view_and_bash_read_the_upload(code_execution_emulator, anthropic_client):
    uploaded = upload(anthropic_client)
    code_execution_emulator.add_turn(
        view("$INPUT_DIR/sample.csv"),
        bash("awk -F, 'NR>1 {p += $4} END {print p}' $INPUT_DIR/sample.csv"),
        python(
            "import os\nprint(open(os.path.join(os.environ['INPUT_DIR'], 'sample.csv')).read().count('\\n'))"
        ),
        text("Total profit: $35,400"),
    )
    message = send(anthropic_client, uploads(uploaded.id))
    viewed = result_of(message)
    assert viewed.type == "text_editor_code_execution_view_result"
    # as recorded: the raw text without its final newline, 7 lines
    assert (viewed.content, viewed.num_lines, viewed.total_lines) == (SAMPLE.rstrip("\n"), 7, 7)
    assert result_of(message, 3).stdout == "35400\n"
    assert result_of(message, 5).stdout == "7"
    assert message.container is not None


def test_builtin_model_views_the_upload(code_execution_emulator, anthropic_client):
    uploaded = upload(anthropic_client)
    prompt = "```view $INPUT_DIR/sample.csv\n```\n```bash\nwc -l < $INPUT_DIR/sample.csv\n```"
    message = send(anthropic_client, uploads(uploaded.id, prompt=prompt))
    assert result_of(message).content.startswith("month,revenue")
    assert result_of(message, 3).stdout == "7\n"


def test_legacy_python_tool_reads_the_upload(code_execution_emulator, anthropic_client):
    uploaded = upload(anthropic_client, "data.txt", b"value: 42\n", "text/plain")
    code_execution_emulator.add_turn(
        python("import os\nprint(open(os.environ['INPUT_DIR'] + '/data.txt').read())")
    )
    message = send(anthropic_client, uploads(uploaded.id), tools=[LEGACY_TOOL])
    assert result_of(message).stdout == "value: 42"


def test_streaming_request_with_an_upload(code_execution_emulator, anthropic_client):
    uploaded = upload(anthropic_client)
    code_execution_emulator.add_turn(bash("head -1 $INPUT_DIR/sample.csv"))
    with anthropic_client.beta.messages.stream(
        model=MODEL,
        max_tokens=100,
        tools=[TOOL],
        messages=[{"role": "user", "content": uploads(uploaded.id)}],
    ) as stream:
        message = stream.get_final_message()
    assert result_of(message).stdout == "month,revenue,expenses,profit\n"


def test_uploads_are_staged_once_and_restored_when_changed(code_execution_emulator, anthropic_client):
    uploaded = upload(anthropic_client)
    history = [{"role": "user", "content": uploads(uploaded.id)}]
    stat = "stat -c '%i %y' $INPUT_DIR/sample.csv"
    code_execution_emulator.add_turn(bash(stat))
    first = anthropic_client.beta.messages.create(model=MODEL, max_tokens=100, tools=[TOOL], messages=history)
    container = first.container.id
    history += [
        {"role": "assistant", "content": [block.to_dict() for block in first.content]},
        {"role": "user", "content": "again"},
    ]
    code_execution_emulator.add_turn(bash(stat + "; echo changed >> $INPUT_DIR/sample.csv"))
    second = anthropic_client.beta.messages.create(
        model=MODEL, max_tokens=100, tools=[TOOL], messages=history, container=container
    )
    # an identical file already in place is not copied again (same inode, same modification time)
    assert result_of(second).stdout == result_of(first).stdout

    history += [
        {"role": "assistant", "content": [block.to_dict() for block in second.content]},
        {"role": "user", "content": "and again"},
    ]
    code_execution_emulator.add_turn(bash("tail -1 $INPUT_DIR/sample.csv"))
    third = anthropic_client.beta.messages.create(
        model=MODEL, max_tokens=100, tools=[TOOL], messages=history, container=container
    )
    assert result_of(third).stdout == "June,17800,10200,7600\n"  # the changed copy was replaced


def test_a_new_container_gets_the_history_uploads(code_execution_emulator, anthropic_client):
    first_file = upload(anthropic_client, "a.txt", b"first\n", "text/plain")
    second_file = upload(anthropic_client, "b.txt", b"second\n", "text/plain")
    history = [
        {"role": "user", "content": uploads(first_file.id)},
        {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
        {"role": "user", "content": [{"type": "container_upload", "file_id": second_file.id}]},
    ]
    code_execution_emulator.add_turn(bash("cat $INPUT_DIR/a.txt $INPUT_DIR/b.txt"))
    message = anthropic_client.beta.messages.create(
        model=MODEL, max_tokens=100, tools=[TOOL], messages=history
    )
    assert result_of(message, 1).stdout == "first\nsecond\n"


def test_the_last_upload_of_a_name_wins(code_execution_emulator, anthropic_client):
    old = upload(anthropic_client, "v.txt", b"old\n", "text/plain")
    new = upload(anthropic_client, "v.txt", b"new\n", "text/plain")
    code_execution_emulator.add_turn(bash("cat $INPUT_DIR/v.txt"))
    assert result_of(send(anthropic_client, uploads(old.id, new.id))).stdout == "new\n"


def test_a_turn_without_tool_calls_still_stages_and_returns_the_container(
    code_execution_emulator, anthropic_client
):
    uploaded = upload(anthropic_client)
    code_execution_emulator.add_turn(text("I will look at it next."))
    message = send(anthropic_client, uploads(uploaded.id))
    assert message.container is not None
    code_execution_emulator.add_turn(bash("ls $INPUT_DIR"))
    later = anthropic_client.beta.messages.create(
        model=MODEL,
        max_tokens=100,
        tools=[TOOL],
        container=message.container.id,
        messages=[{"role": "user", "content": "go"}],
    )
    assert result_of(later, 1).stdout == "sample.csv\n"


def test_container_upload_without_the_code_execution_tool_is_400(anthropic_client):
    uploaded = upload(anthropic_client)
    with pytest.raises(anthropic.BadRequestError) as caught:
        send(anthropic_client, uploads(uploaded.id), tools=())
    assert caught.value.body["error"]["message"] == (
        "messages.0.content.1: `container_upload` blocks need the code execution tool in `tools`"
    )


def test_container_upload_of_an_unknown_file_is_404(anthropic_client):
    with pytest.raises(anthropic.NotFoundError) as caught:
        send(anthropic_client, uploads("file_01NoSuchFileXXXXXXXXXXXX"))
    assert caught.value.body["error"]["message"] == "File not found: file_01NoSuchFileXXXXXXXXXXXX"


# --- output files ------------------------------------------------------------------------------------------


def test_output_files_become_downloadable_files(code_execution_emulator, anthropic_client):
    code_execution_emulator.add_turn(
        bash(
            "mkdir -p $OUTPUT_DIR/sub && printf 'a,b\\n1,2\\n' > $OUTPUT_DIR/table.csv"
            " && echo '# Report' > $OUTPUT_DIR/sub/report.md && printf '{}' > $OUTPUT_DIR/data.json"
        ),
        bash("echo 'no new files'"),
        bash("printf 'a,b\\n3,4\\n' > $OUTPUT_DIR/table.csv"),
    )
    message = send(anthropic_client, "go")
    files = result_of(message).content
    assert [f.type for f in files] == ["bash_code_execution_output"] * 3
    metas = {m.filename: m for m in (anthropic_client.beta.files.retrieve_metadata(f.file_id) for f in files)}
    assert {name: (m.mime_type, m.downloadable) for name, m in metas.items()} == {
        "table.csv": ("text/csv", True),
        "report.md": ("text/markdown", True),
        "data.json": ("application/json", True),
    }
    assert anthropic_client.beta.files.download(metas["report.md"].id).read() == b"# Report\n"
    assert result_of(message, 3).content == []  # only files a call changed are reported
    [rewritten] = result_of(message, 5).content
    assert anthropic_client.beta.files.download(rewritten.file_id).read() == b"a,b\n3,4\n"
    assert anthropic_client.beta.files.download(metas["table.csv"].id).read() == b"a,b\n1,2\n"


def test_python_outputs_are_code_execution_output(code_execution_emulator, anthropic_client):
    code_execution_emulator.add_turn(
        python(
            "import os\n"
            "open(os.path.join(os.environ['OUTPUT_DIR'], 'squares.csv'), 'w').write('1,1\\n2,4\\n')"
        )
    )
    message = send(anthropic_client, "go", tools=[LEGACY_TOOL])
    [output] = result_of(message).content
    assert output.type == "code_execution_output"
    assert anthropic_client.beta.files.download(output.file_id).read() == b"1,1\n2,4\n"


def test_output_files_outlive_their_container(code_execution_emulator, anthropic_client):
    code_execution_emulator.add_turn(bash("echo kept > $OUTPUT_DIR/kept.txt"))
    message = send(anthropic_client, "go")
    [output] = result_of(message).content
    code_execution_emulator.runtime.services.backend.open(message.container.id).destroy()
    code_execution_emulator.runtime.services.containers.forget(message.container.id)
    with pytest.raises(anthropic.NotFoundError):
        send(anthropic_client, "go", container=message.container.id)
    assert anthropic_client.beta.files.download(output.file_id).read() == b"kept\n"


@pytest.mark.code_execution_emulator(max_output_file_bytes=1000)
def test_output_file_too_large(code_execution_emulator):
    client = code_execution_emulator.anthropic_client()
    code_execution_emulator.add_turn(
        bash("head -c 1000 /dev/zero > $OUTPUT_DIR/fits.bin && echo ok"),
        bash("echo small > $OUTPUT_DIR/small.txt && head -c 1001 /dev/zero > $OUTPUT_DIR/big.bin"),
        python(
            "import os\nopen(os.environ['OUTPUT_DIR'] + '/big2.bin', 'wb').write(bytes(2000))\nprint('done')"
        ),
    )
    message = send(client, "go")
    assert len(result_of(message).content) == 1
    failed = result_of(message, 3)
    assert (failed.type, failed.error_code) == (
        "bash_code_execution_tool_result_error",
        "output_file_too_large",
    )
    python_result = result_of(message, 5)
    # the Python tool has no such code: the run's result stays, without the files
    assert (python_result.type, python_result.stdout, python_result.content) == (
        "code_execution_result",
        "done",
        [],
    )
    assert "big2.bin is larger than 1000 bytes" in python_result.stderr
    assert sorted(f.filename for f in client.beta.files.list()) == ["fits.bin"]  # nothing of the failed calls


# --- the docs' example flow --------------------------------------------------------------------------------

CHART_SCRIPT = r"""
import csv, os, struct, zlib

rows = list(csv.DictReader(open(os.path.join(os.environ["INPUT_DIR"], "data.csv"))))
values = [int(r["revenue"]) for r in rows]
W, H, BAR = 120, 80, 20
top = max(values)
lines = []
for y in range(H):
    line = bytearray([0])
    for x in range(W):
        i = x // BAR
        on = i < len(values) and H - y <= values[i] * (H - 4) // top and x % BAR < BAR - 2
        line += bytes((30, 90, 200) if on else (255, 255, 255))
    lines.append(bytes(line))

def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 0))
png += chunk(b"IDAT", zlib.compress(b"".join(lines))) + chunk(b"IEND", b"")
out = os.environ["OUTPUT_DIR"]
with open(os.path.join(out, "revenue_chart.png"), "wb") as f:
    f.write(png)
with open(os.path.join(out, "summary_report.md"), "w") as f:
    f.write(f"# Summary\n\nMonths: {len(values)}\nTotal revenue: {sum(values)}\nBest month: {max(values)}\n")
print(f"total revenue {sum(values)}")
"""


def read_png(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and raw scanlines of an 8-bit RGB PNG, checking every chunk's CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, idat, header = 8, b"", b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert crc == zlib.crc32(kind + body)
        header = body if kind == b"IHDR" else header
        idat += body if kind == b"IDAT" else b""
        position += 12 + length
    width, height, depth, color = struct.unpack(">IIBB", header[:10])
    assert (depth, color) == (8, 2)
    return width, height, zlib.decompress(idat)


def test_docs_example_flow(code_execution_emulator, anthropic_client, tmp_path):
    client = anthropic_client
    csv_path = tmp_path / "data.csv"
    csv_path.write_text(SAMPLE)
    # 1. upload the CSV (the docs pass an open file; the SDK takes its name from it)
    with csv_path.open("rb") as handle:
        uploaded = client.beta.files.upload(file=("data.csv", handle, "text/csv"))
    code_execution_emulator.add_turn(
        text("I'll analyze the CSV data, chart it and write a report."),
        create("/tmp/chart.py", CHART_SCRIPT),
        bash("python3 /tmp/chart.py"),
        text("Done: revenue_chart.png and summary_report.md."),
    )
    # 2. reference it with container_upload
    response = client.beta.messages.create(
        model="claude-sonnet-4-5",
        betas=["code-execution-2025-08-25", "files-api-2025-04-14"],
        max_tokens=4096,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": "Analyze this CSV data: create a summary report and save a chart",
                    },
                    {"type": "container_upload", "file_id": uploaded.id},
                ],
            }
        ],
        tools=[{"type": "code_execution_20250825", "name": "code_execution"}],
    )

    # 3. the docs' own helper, unchanged
    def extract_file_ids(response):
        file_ids = []
        for item in response.content:
            if item.type == "bash_code_execution_tool_result":
                content_item = item.content
                if content_item.type == "bash_code_execution_result":
                    for file in content_item.content:
                        if hasattr(file, "file_id"):
                            file_ids.append(file.file_id)
        return file_ids

    # 4. download them as the docs do
    downloaded = {}
    for file_id in extract_file_ids(response):
        file_metadata = client.beta.files.retrieve_metadata(file_id)
        file_content = client.beta.files.download(file_id)
        file_content.write_to_file(tmp_path / file_metadata.filename)
        downloaded[file_metadata.filename] = file_metadata
    assert sorted(downloaded) == ["revenue_chart.png", "summary_report.md"]
    assert downloaded["revenue_chart.png"].mime_type == "image/png"
    assert all(meta.downloadable for meta in downloaded.values())

    report = (tmp_path / "summary_report.md").read_text()
    assert "Total revenue: 89700" in report and "Months: 6" in report
    width, height, scanlines = read_png((tmp_path / "revenue_chart.png").read_bytes())
    assert (width, height) == (120, 80)
    stride = 1 + 3 * width
    bottom = scanlines[(height - 1) * stride + 1 :][:3]
    top_left = scanlines[1:4]
    assert bytes(bottom) == bytes((30, 90, 200)) and bytes(top_left) == bytes((255, 255, 255))

    # the generated files are listed next to the upload, and the non-beta resource sees them too
    listed = {f.filename: f.downloadable for f in client.files.list()}
    assert listed == {"data.csv": False, "revenue_chart.png": True, "summary_report.md": True}
    assert client.files.download(downloaded["summary_report.md"].id).read() == report.encode()

"""Every format and schema through datanets.parsing (no Django needed)."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datanets.parsing import Limits, UploadError, parse_upload


def contents(result):
    return [c for _, c, _ in result.records]


def test_jsonl_json_csv_and_parquet_give_the_same_records():
    rows = [{"instruction": "Hi?", "input": "", "output": "Hello."}, {"instruction": "2+2?", "output": "4"}]
    expected = [
        {"instruction": "Hi?", "input": "", "output": "Hello."},
        {"instruction": "2+2?", "input": "", "output": "4"},
    ]
    as_jsonl = "\n".join(json.dumps(r) for r in rows).encode()
    assert contents(parse_upload(as_jsonl, "a.jsonl", "instruction")) == expected
    assert contents(parse_upload(json.dumps(rows).encode(), "a.json", "instruction")) == expected
    csv_data = b"instruction,input,output\nHi?,,Hello.\n2+2?,,4\n"
    assert contents(parse_upload(csv_data, "a.csv", "instruction")) == expected
    buffer = io.BytesIO()
    pq.write_table(
        pa.Table.from_pylist([{"instruction": "Hi?", "output": "Hello."}, {"instruction": "2+2?", "output": "4"}]),
        buffer,
    )
    assert contents(parse_upload(buffer.getvalue(), "a.parquet", "instruction")) == expected


def test_openai_and_sharegpt_chats_normalise_to_messages():
    openai = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
    sharegpt = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}
    for row in (openai, sharegpt):
        result = parse_upload(json.dumps(row).encode(), "c.jsonl", "chat")
        assert contents(result) == [openai]
    bad = {"messages": [{"role": "wizard", "content": "x"}]}
    result = parse_upload(json.dumps(bad).encode(), "c.jsonl", "chat")
    assert result.errors[0].message.startswith("message 1 has role 'wizard'")


def test_txt_by_line_or_paragraph():
    text = b"first line\nsecond line\n\nthird paragraph\nstill third\n"
    assert len(parse_upload(text, "t.txt", "text").records) == 4
    paragraphs = contents(parse_upload(text, "t.txt", "text", txt_paragraphs=True))
    assert paragraphs == [{"text": "first line\nsecond line"}, {"text": "third paragraph\nstill third"}]


def test_limits_and_row_numbers():
    rows = b'{"text": "ok"}\n\n{"text": 5.5}\n{"text": ["no"]}\n'
    result = parse_upload(rows, "t.jsonl", "text")
    assert [(e.row, e.field) for e in result.errors] == [(4, "text")]
    with pytest.raises(UploadError, match="limit is 10"):
        parse_upload(b"x" * 11, "t.txt", "text", limits=Limits(max_bytes=10))


def test_known_aliases_are_detected():
    result = parse_upload(b'{"prompt": "2+2?", "response": "4"}', "a.jsonl", "instruction")
    assert result.mapping == {"instruction": "prompt", "output": "response"}
    assert contents(result) == [{"instruction": "2+2?", "input": "", "output": "4"}]

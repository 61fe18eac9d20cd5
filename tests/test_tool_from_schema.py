"""Tools from a raw JSON schema, the API's rule for tool names, and structured results
sent as JSON (the seeds' tool-calling API: 003's Tool, 004's tool definitions)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from nbagent import Tool, tool
from nbagent.events import ToolCall
from nbagent.tools.base import as_tool_output
from nbagent.tools.runner import ToolRunner

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "location": {"type": "string", "description": "The city and state"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer"},
    },
    "required": ["location"],
}


def run_one(t: Tool, **input: object):
    return ToolRunner([t]).run_one(ToolCall("toolu_1", t.name, dict(input)))


def test_from_schema_with_keyword_parameters():
    def get_weather(location: str, unit: str = "celsius", days: int = 1) -> str:
        return f"{location}: 22 {unit} for {days} day(s)"

    t = Tool.from_schema("get_weather", "Get the weather.", WEATHER_SCHEMA, get_weather)
    assert t.to_param() == {
        "name": "get_weather",
        "description": "Get the weather.",
        "input_schema": WEATHER_SCHEMA,
    }
    assert t.category == "execute" and not t.read_only
    out = run_one(t, location="Paris", unit="fahrenheit")
    assert out.content == "Paris: 22 fahrenheit for 1 day(s)" and not out.is_error


def test_from_schema_with_a_handler_that_takes_the_input_dict():
    seen = []

    def handler(input: dict) -> dict:
        seen.append(input)
        return {"files": ["a.csv"], "path": input["path"]}

    schema = {"type": "object", "properties": {"path": {"type": "string"}}}
    t = Tool.from_schema("list_files", "List a directory.", schema, handler, read_only=True)
    out = run_one(t, path="/data")
    assert seen == [{"path": "/data"}]
    assert json.loads(out.text()) == {"files": ["a.csv"], "path": "/data"}
    assert t.category == "read"


@pytest.mark.parametrize(
    ("input", "problem"),
    [
        ({}, "missing required argument 'location'"),
        ({"location": 3}, "'location': expected string (got 3)"),
        ({"location": "x", "unit": "kelvin"}, "'unit': must be one of 'celsius', 'fahrenheit'"),
        ({"location": "x", "days": True}, "'days': expected integer (got True)"),
        ({"location": "x", "days": 2.5}, "'days': expected integer (got 2.5)"),
    ],
)
def test_from_schema_checks_the_input_before_the_call(input, problem):
    calls = []
    t = Tool.from_schema(
        "get_weather", "Get the weather.", WEATHER_SCHEMA, lambda **kw: calls.append(kw)
    )
    out = run_one(t, **input)
    assert out.is_error and problem in out.text()
    assert out.text().startswith("Error: Invalid input for tool get_weather")
    assert calls == [], "a bad input never reaches the function"


def test_additional_properties_false_refuses_unknown_arguments():
    schema = {**WEATHER_SCHEMA, "additionalProperties": False}
    t = Tool.from_schema("w", "Weather.", schema, lambda input: "ok")
    out = run_one(t, location="x", colour="blue")
    assert out.is_error and "unexpected argument 'colour'" in out.text()


def test_from_schema_refuses_what_the_api_would():
    with pytest.raises(ValueError, match="input_schema must be a JSON schema of type object"):
        Tool.from_schema("t", "d", {"type": "string"}, lambda input: "")
    with pytest.raises(ValueError, match="needs a description"):
        Tool.from_schema("t", " ", WEATHER_SCHEMA, lambda input: "")
    with pytest.raises(TypeError, match="callable"):
        Tool.from_schema("t", "d", WEATHER_SCHEMA, "not a function")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["bad name!", "", "a" * 129, "dots.not.allowed", "ünïcode"])
def test_invalid_tool_names_are_refused_with_the_rule(name):
    with pytest.raises(ValueError, match=r"invalid tool name .*\^\[a-zA-Z0-9_-\]\{1,128\}\$"):
        Tool.from_schema(name, "d", WEATHER_SCHEMA, lambda input: "")

    def f(x: int) -> str:
        """Doc.

        Args:
            x: x
        """
        return ""

    if name:  # an empty name means the function's own name
        with pytest.raises(ValueError, match="invalid tool name"):
            tool(name=name)(f)


def test_valid_names_up_to_128_characters():
    assert Tool.from_schema("a" * 128, "d", WEATHER_SCHEMA, lambda input: "").name == "a" * 128
    assert Tool.from_schema("get-weather_2", "d", WEATHER_SCHEMA, lambda input: "").name


def test_structured_results_are_json_not_repr():
    @tool
    def stats(column: str) -> dict:
        """Summary statistics.

        Args:
            column: the column
        """
        return {"column": column, "mean": 2.5, "ok": True, "missing": None}

    out = run_one(stats, column="price")
    assert out.content == '{"column": "price", "mean": 2.5, "ok": true, "missing": null}'


@pytest.mark.parametrize(
    ("result", "sent"),
    [
        ([1, 2, 3], "[1, 2, 3]"),
        ((1, "a"), '[1, "a"]'),
        ([{"name": "a"}, {"name": "b"}], '[{"name": "a"}, {"name": "b"}]'),
        ({"when": dt.date(2025, 6, 15)}, '{"when": "2025-06-15"}'),
        ({"tags": {"b", "a"}}, '{"tags": ["a", "b"]}'),
        ({"city": "Zürich"}, '{"city": "Zürich"}'),
        ([], "[]"),
        (42, "42"),
    ],
)
def test_as_tool_output(result, sent):
    assert as_tool_output(result).content == sent


def test_content_blocks_stay_blocks_but_look_alike_data_is_json():
    blocks = [{"type": "text", "text": "see"}, {"type": "image", "source": {}}]
    assert as_tool_output(blocks).content == blocks
    records = [{"type": "cat", "name": "Tom"}]
    assert as_tool_output(records).content == '[{"type": "cat", "name": "Tom"}]'

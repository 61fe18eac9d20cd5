"""FileNotebook (nbformat on disk) and the notebook toolset on temporary .ipynb files."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import nbformat
import pytest
from nbformat import v4

from nbagent.events import ToolOutput
from nbagent.notebook import FileNotebook, NotebookConflict, notebook_tools, source_hash
from nbagent.notebook.tools import render_output, tool_output_to_nb_outputs
from nbagent.tools.base import ToolError, ToolInputError

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()


def make_notebook(path: Path, *cells: nbformat.NotebookNode) -> list[str]:
    nb = v4.new_notebook()
    nb.cells = list(cells)
    nbformat.write(nb, path)
    return [c["id"] for c in nb.cells]


@pytest.fixture
def nb_path(tmp_path: Path) -> Path:
    path = tmp_path / "analysis.ipynb"
    first = v4.new_code_cell(
        "print('hello')",
        execution_count=1,
        outputs=[v4.new_output("stream", name="stdout", text="hello\n")],
    )
    second = v4.new_markdown_cell("# Title")
    third = v4.new_code_cell(
        "plot()",
        execution_count=2,
        outputs=[
            v4.new_output(
                "display_data", data={"image/png": PNG, "text/plain": "<Figure size 640x480>"}
            ),
            v4.new_output("error", ename="ValueError", evalue="bad value", traceback=["..."]),
        ],
    )
    make_notebook(path, first, second, third)
    return path


def ids(path: Path) -> list[str]:
    return [c["id"] for c in nbformat.read(path, as_version=4).cells]


def sources(path: Path) -> list[str]:
    return [c["source"] for c in nbformat.read(path, as_version=4).cells]


def toolset(doc, **kwargs):
    return {t.name: t for t in notebook_tools(lambda: doc, **kwargs)}


def call(tools, name, **args) -> ToolOutput:
    return tools[name].call(args)


def tmp_files(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


# -- FileNotebook --------------------------------------------------------------


def test_read_gives_ids_types_sources_and_outputs(nb_path: Path) -> None:
    cells = FileNotebook(nb_path).read()
    assert [c.id for c in cells] == ids(nb_path)
    assert [c.cell_type for c in cells] == ["code", "markdown", "code"]
    assert cells[0].source == "print('hello')"
    assert cells[0].execution_count == 1
    assert cells[0].outputs == [{"output_type": "stream", "name": "stdout", "text": "hello\n"}]
    assert cells[1].execution_count is None and cells[1].outputs == []
    assert cells[2].outputs[0]["data"]["image/png"] == PNG


def test_insert_after_a_cell_and_at_the_end(nb_path: Path) -> None:
    doc = FileNotebook(nb_path)
    first, second, third = ids(nb_path)
    middle = doc.insert_cell("x = 1", after_cell_id=first)
    last = doc.insert_cell("## Notes", cell_type="markdown")
    assert ids(nb_path) == [first, middle, second, third, last]
    nb = nbformat.read(nb_path, as_version=4)
    assert nb.cells[1].source == "x = 1" and nb.cells[1].cell_type == "code"
    assert nb.cells[4].cell_type == "markdown"
    nbformat.validate(nb)
    with pytest.raises(ToolError, match="no cell with id 'nope'"):
        doc.insert_cell("y", after_cell_id="nope")
    with pytest.raises(ToolError, match="cell_type must be one of"):
        doc.insert_cell("y", cell_type="sql")


def test_insert_into_an_empty_notebook(tmp_path: Path) -> None:
    path = tmp_path / "empty.ipynb"
    make_notebook(path)
    new = FileNotebook(path).insert_cell("1 + 1")
    assert ids(path) == [new]


def test_edit_checks_the_hash_against_the_file_now(nb_path: Path) -> None:
    doc = FileNotebook(nb_path)
    cell = doc.read()[0]
    doc.edit_cell(cell.id, "print('bye')", cell.hash)
    assert sources(nb_path)[0] == "print('bye')"
    # The outputs stay until the cell is run again (as when a user edits a cell).
    assert nbformat.read(nb_path, as_version=4).cells[0].outputs

    before = nb_path.read_bytes()
    with pytest.raises(NotebookConflict) as info:
        doc.edit_cell(cell.id, "print('again')", cell.hash)  # stale hash
    assert info.value.current_source == "print('bye')"
    assert nb_path.read_bytes() == before


def test_delete_with_hash_precondition(nb_path: Path) -> None:
    doc = FileNotebook(nb_path)
    first, second, third = doc.read()
    with pytest.raises(NotebookConflict):
        doc.delete_cell(second.id, source_hash("something else"))
    assert len(ids(nb_path)) == 3
    doc.delete_cell(second.id, second.hash)
    assert ids(nb_path) == [first.id, third.id]
    with pytest.raises(ToolError, match="read_notebook"):
        doc.delete_cell(second.id, second.hash)


def test_set_outputs(nb_path: Path) -> None:
    doc = FileNotebook(nb_path)
    first, second, _ = doc.read()
    out = {
        "output_type": "execute_result",
        "data": {"text/plain": "2"},
        "metadata": {},
        "execution_count": 7,
    }
    doc.set_outputs(first.id, [out], 7)
    cell = nbformat.read(nb_path, as_version=4).cells[0]
    assert cell.execution_count == 7 and cell.outputs[0]["data"]["text/plain"] == "2"
    with pytest.raises(ToolError, match="only code cells"):
        doc.set_outputs(second.id, [], None)
    before = nb_path.read_bytes()
    with pytest.raises(ToolError, match="invalid notebook"):
        doc.set_outputs(first.id, [{"output_type": "stream"}], None)  # no name/text
    assert nb_path.read_bytes() == before


def test_writes_are_atomic_and_leave_no_temp_files(
    nb_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = FileNotebook(nb_path)
    doc.insert_cell("a = 1")
    assert tmp_files(nb_path.parent) == []

    before = nb_path.read_bytes()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(ToolError, match="Could not write notebook .*left unchanged"):
        doc.insert_cell("b = 2")
    monkeypatch.undo()
    assert nb_path.read_bytes() == before
    assert tmp_files(nb_path.parent) == []


def test_written_notebook_is_valid_nbformat(nb_path: Path) -> None:
    doc = FileNotebook(nb_path)
    first = doc.read()[0]
    doc.insert_cell("raw text", cell_type="raw")
    doc.edit_cell(first.id, "x = 2\ny = 3", first.hash)
    nb = nbformat.read(nb_path, as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat == 4 and nb.nbformat_minor >= 5
    assert nb_path.read_text().endswith("\n")


def test_invalid_json_is_a_clear_error_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "broken.ipynb"
    path.write_text('{"cells": [\n  {"cell_type": "code",,}\n')
    before = path.read_bytes()
    doc = FileNotebook(path)
    with pytest.raises(ToolError, match=r"not a valid notebook: invalid JSON at line 2"):
        doc.read()
    with pytest.raises(ToolError, match="left unchanged"):
        doc.insert_cell("x = 1")
    assert path.read_bytes() == before

    other = tmp_path / "data.ipynb"
    other.write_text('{"a": 1}')
    with pytest.raises(ToolError, match="not a Jupyter notebook"):
        FileNotebook(other).read()
    with pytest.raises(ToolError, match="does not exist"):
        FileNotebook(tmp_path / "missing.ipynb").read()


def test_open_in_frontend_reads_but_refuses_writes(nb_path: Path) -> None:
    doc = FileNotebook(nb_path, open_in_frontend=True)
    cells = doc.read()
    assert len(cells) == 3
    before = nb_path.read_bytes()
    message = "is open in a frontend without the nbagent extension; refusing to write it on disk"
    with pytest.raises(ToolError, match=message):
        doc.insert_cell("x")
    with pytest.raises(ToolError, match=message):
        doc.edit_cell(cells[0].id, "x", cells[0].hash)
    with pytest.raises(ToolError, match=message):
        doc.delete_cell(cells[0].id, cells[0].hash)
    with pytest.raises(ToolError, match=message):
        doc.set_outputs(cells[0].id, [], None)
    assert nb_path.read_bytes() == before

    tools = toolset(doc)
    text = call(tools, "read_notebook").text()
    assert "Warning:" in text and "unsaved edits" in text
    with pytest.raises(ToolError, match="refusing to write"):
        call(tools, "insert_cell", source="x")


def test_notebook_without_cell_ids_gets_stable_ids(tmp_path: Path) -> None:
    path = tmp_path / "old.ipynb"
    nb = {
        "nbformat": 4,
        "nbformat_minor": 2,
        "metadata": {},
        "cells": [
            {
                "cell_type": "code",
                "metadata": {},
                "source": ["a = 1\n", "b = 2"],
                "outputs": [],
                "execution_count": None,
            },
            {"cell_type": "markdown", "metadata": {}, "source": "text"},
        ],
    }
    path.write_text(json.dumps(nb))
    doc = FileNotebook(path)
    cells = doc.read()
    assert [c.id for c in cells] == ["cell-0", "cell-1"]
    assert doc.read()[0].id == "cell-0"  # stable across reads
    assert cells[0].source == "a = 1\nb = 2"
    assert json.loads(path.read_text()) == nb  # reading never writes
    # The first write saves the ids the agent saw, as nbformat 4.5.
    doc.edit_cell("cell-1", "new text", cells[1].hash)
    saved = nbformat.read(path, as_version=4)
    nbformat.validate(saved)
    assert saved.nbformat_minor == 5
    assert [c.id for c in saved.cells] == ["cell-0", "cell-1"]
    assert saved.cells[1].source == "new text"


# -- notebook_tools ------------------------------------------------------------


def test_tool_names_and_params(nb_path: Path) -> None:
    tools = toolset(FileNotebook(nb_path))
    assert sorted(tools) == ["delete_cell", "edit_cell", "insert_cell", "read_notebook"]
    schema = {name: t.to_param()["input_schema"] for name, t in tools.items()}
    assert schema["read_notebook"]["properties"] == {}
    assert set(schema["insert_cell"]["properties"]) == {"source", "cell_type", "after_cell_id"}
    assert schema["insert_cell"]["required"] == ["source"]
    assert set(schema["edit_cell"]["properties"]) == {"cell_id", "source"}
    assert set(schema["delete_cell"]["properties"]) == {"cell_id"}
    assert tools["read_notebook"].read_only
    assert tools["insert_cell"].category == "write"
    assert tools["edit_cell"].category == "write"
    assert tools["delete_cell"].category == "destructive"
    with_run = toolset(FileNotebook(nb_path), run_code=lambda src: ToolOutput("ok"))
    assert with_run["run_cell"].category == "execute"
    assert set(with_run["run_cell"].to_param()["input_schema"]["properties"]) == {"cell_id"}


def test_read_notebook_text(nb_path: Path) -> None:
    tools = toolset(FileNotebook(nb_path))
    text = call(tools, "read_notebook").text()
    first, second, third = ids(nb_path)
    assert f"Notebook {nb_path}: 3 cells." in text
    assert f"=== cell 1 of 3 | id: {first} | code | [1] ===" in text
    assert f"=== cell 2 of 3 | id: {second} | markdown ===" in text
    assert "print('hello')\n--- output ---\nhello" in text
    assert "[image/png]" in text and PNG not in text
    assert "ValueError: bad value" in text


def test_read_notebook_clips_big_outputs_and_big_notebooks(tmp_path: Path) -> None:
    path = tmp_path / "big.ipynb"
    big = v4.new_code_cell("x", outputs=[v4.new_output("stream", name="stdout", text="y" * 50_000)])
    make_notebook(path, big, *[v4.new_code_cell(f"cell_{i} = {i}\n" * 50) for i in range(40)])
    tools = toolset(FileNotebook(path), max_chars=5_000)
    text = call(tools, "read_notebook").text()
    assert len(text) < 8_000
    assert "output clipped" in text or "Outputs are omitted" in text
    assert "more cell(s) not shown" in text


def test_tools_without_a_notebook() -> None:
    tools = {t.name: t for t in notebook_tools(lambda: None)}
    with pytest.raises(ToolError, match="not attached to a notebook"):
        call(tools, "read_notebook")


def test_insert_tool(nb_path: Path) -> None:
    tools = toolset(FileNotebook(nb_path))
    first = ids(nb_path)[0]
    answer = call(tools, "insert_cell", source="z = 3", after_cell_id=first).text()
    new_id = ids(nb_path)[1]
    assert new_id in answer and "after cell" in answer
    assert sources(nb_path)[1] == "z = 3"
    answer = call(tools, "insert_cell", source="note", cell_type="markdown").text()
    assert ids(nb_path)[-1] in answer and "at the end" in answer
    with pytest.raises(ToolError, match="cell_type must be one of"):
        call(tools, "insert_cell", source="q", cell_type="python")
    with pytest.raises(ToolInputError):
        call(tools, "insert_cell")
    # The agent wrote it, so it knows the source: editing it needs no read first.
    call(tools, "edit_cell", cell_id=new_id, source="z = 4")
    assert sources(nb_path)[1] == "z = 4"


def test_edit_conflict_when_the_user_changed_the_cell_on_disk(nb_path: Path) -> None:
    tools = toolset(FileNotebook(nb_path))
    call(tools, "read_notebook")
    cell_id = ids(nb_path)[0]

    # Someone else changes the cell between the agent's read and its edit.
    nb = nbformat.read(nb_path, as_version=4)
    nb.cells[0].source = "print('changed by the user')"
    nbformat.write(nb, nb_path)
    before = nb_path.read_bytes()

    with pytest.raises(NotebookConflict) as info:
        call(tools, "edit_cell", cell_id=cell_id, source="print('agent')")
    message = str(info.value)
    assert "changed" in message and "since you last read it" in message
    assert "print('changed by the user')" in message
    assert nb_path.read_bytes() == before

    # The error showed the current source, so a retry applies.
    call(tools, "edit_cell", cell_id=cell_id, source="print('agent, on top of the user')")
    assert sources(nb_path)[0] == "print('agent, on top of the user')"


def test_edit_of_a_cell_never_read_uses_its_current_source(nb_path: Path) -> None:
    tools = toolset(FileNotebook(nb_path))
    cell_id = ids(nb_path)[1]
    call(tools, "edit_cell", cell_id=cell_id, source="# New title")
    assert sources(nb_path)[1] == "# New title"
    with pytest.raises(ToolError, match="no cell with id 'missing'"):
        call(tools, "edit_cell", cell_id="missing", source="x")


def test_delete_tool_with_conflict(nb_path: Path) -> None:
    tools = toolset(FileNotebook(nb_path))
    call(tools, "read_notebook")
    first, second, third = ids(nb_path)
    call(tools, "delete_cell", cell_id=second)
    assert ids(nb_path) == [first, third]

    nb = nbformat.read(nb_path, as_version=4)
    nb.cells[1].source = "plot(changed=True)"
    nbformat.write(nb, nb_path)
    with pytest.raises(NotebookConflict, match=r"plot\(changed=True\)"):
        call(tools, "delete_cell", cell_id=third)
    assert ids(nb_path) == [first, third]

    # A cell deleted by someone else: a clear answer, not a crash.
    nb.cells.pop(0)
    nbformat.write(nb, nb_path)
    with pytest.raises(ToolError, match="read_notebook"):
        call(tools, "edit_cell", cell_id=first, source="x")


def test_run_cell_writes_outputs_into_the_cell(nb_path: Path) -> None:
    ran: list[str] = []

    def run_code(source: str) -> ToolOutput:
        ran.append(source)
        return ToolOutput(
            [
                {"type": "text", "text": "hello\n"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                },
            ]
        )

    tools = toolset(FileNotebook(nb_path), run_code=run_code)
    first = ids(nb_path)[0]
    result = call(tools, "run_cell", cell_id=first)
    assert ran == ["print('hello')"]
    assert result.images() and result.text().startswith("hello")
    nb = nbformat.read(nb_path, as_version=4)
    nbformat.validate(nb)
    outputs = nb.cells[0].outputs
    assert outputs[0] == {"output_type": "stream", "name": "stdout", "text": "hello\n"}
    assert outputs[1]["output_type"] == "display_data"
    assert outputs[1]["data"]["image/png"] == PNG

    with pytest.raises(ToolError, match="only code cells can be run"):
        call(tools, "run_cell", cell_id=ids(nb_path)[1])


def test_run_cell_with_an_error_and_with_exact_outputs(nb_path: Path) -> None:
    failing = toolset(
        FileNotebook(nb_path),
        run_code=lambda s: ToolOutput(
            "Traceback ...\nZeroDivisionError: division by zero", is_error=True
        ),
    )
    first = ids(nb_path)[0]
    result = call(failing, "run_cell", cell_id=first)
    assert result.is_error
    out = nbformat.read(nb_path, as_version=4).cells[0].outputs
    assert out[0]["output_type"] == "error"
    assert (out[0]["ename"], out[0]["evalue"]) == ("ZeroDivisionError", "division by zero")

    exact = [
        {
            "output_type": "execute_result",
            "data": {"text/plain": "42"},
            "metadata": {},
            "execution_count": None,
        }
    ]
    precise = toolset(FileNotebook(nb_path), run_code=lambda s: (ToolOutput("42"), exact))
    call(precise, "run_cell", cell_id=first)
    assert nbformat.read(nb_path, as_version=4).cells[0].outputs[0]["data"]["text/plain"] == "42"


def test_run_cell_reports_outputs_it_could_not_store(nb_path: Path) -> None:
    tools = toolset(
        FileNotebook(nb_path, open_in_frontend=True), run_code=lambda s: ToolOutput("done")
    )
    result = call(tools, "run_cell", cell_id=ids(nb_path)[0])
    assert not result.is_error
    assert "done" in result.text() and "could not be stored" in result.text()


def test_render_output_and_conversion_helpers() -> None:
    assert (
        render_output({"output_type": "stream", "name": "stdout", "text": ["a\n", "b\n"]}) == "a\nb"
    )
    html = {"output_type": "display_data", "data": {"text/html": "<b>x</b>"}, "metadata": {}}
    assert render_output(html) == "[text/html, 8 characters]"
    assert tool_output_to_nb_outputs(ToolOutput("(no output)")) == []


def test_a_change_on_disk_during_a_write_is_not_lost(
    nb_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = FileNotebook(nb_path)
    first, second, _ = doc.read()
    serialize = FileNotebook._serialize
    calls = []

    def user_saves_meanwhile(self, nb):
        text = serialize(self, nb)
        if not calls:  # the user saves another cell while the agent's edit is prepared
            other = nbformat.read(nb_path, as_version=4)
            other.cells[1].source = "# Title, edited by the user"
            nbformat.write(other, nb_path)
        calls.append(1)
        return text

    monkeypatch.setattr(FileNotebook, "_serialize", user_saves_meanwhile)
    doc.edit_cell(first.id, "print('agent')", first.hash)
    assert len(calls) == 2  # redone on the new file
    assert sources(nb_path)[:2] == ["print('agent')", "# Title, edited by the user"]


def test_current_document_fallbacks(nb_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nbagent.notebook import LiveNotebook, current_document
    from nbagent.transport.bridge import Client

    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    assert current_document(None, user_ns={}) is None

    doc = current_document(None, user_ns={"__session__": str(nb_path)})
    assert isinstance(doc, FileNotebook) and doc.open_in_frontend and doc.path == str(nb_path)

    monkeypatch.setenv("JPY_SESSION_NAME", str(nb_path))
    assert isinstance(current_document(None, user_ns={}), FileNotebook)
    monkeypatch.delenv("JPY_SESSION_NAME")

    class FakeBridge:
        def __init__(self, client):
            self.client = client

        def choose_client(self, path=None):
            return self.client

    live = Client("c1", "work/analysis.ipynb", "sub-1", "comm-1", "session-1", 1)
    doc = current_document(FakeBridge(live), user_ns={})
    assert isinstance(doc, LiveNotebook)
    assert (doc.client_id, doc.path) == ("c1", "work/analysis.ipynb")

    # A client without a subshell can't answer while the kernel is busy: read the file.
    monkeypatch.chdir(nb_path.parent)
    no_subshell = Client("c2", f"somewhere/{nb_path.name}", None, "comm-2", None, 2)
    doc = current_document(FakeBridge(no_subshell), user_ns={})
    assert isinstance(doc, FileNotebook) and doc.open_in_frontend

"""The notebook file backend under stress: two processes editing one file, old formats,
FIFOs, and what the `%load_ext` path imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
from nbformat import v3, v4

from nbagent.notebook import FileNotebook, notebook_tools
from nbagent.notebook.file_backend import lock_path
from nbagent.tools.base import ToolError

EDITOR = textwrap.dedent(
    """
    import os, sys, time
    from nbagent.notebook import FileNotebook
    from nbagent.notebook.document import source_hash
    path, cell_id, tag, go = sys.argv[1:]
    doc = FileNotebook(path)
    source = next(c.source for c in doc.read() if c.id == cell_id)
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.001)
    for i in range(20):
        new = source + f"{tag}{i}\\n"
        doc.edit_cell(cell_id, new, source_hash(source))  # the hash this process last wrote
        source = new
    """
)


def test_two_processes_editing_one_notebook_lose_no_edit(tmp_path: Path) -> None:
    path = tmp_path / "shared.ipynb"
    nb = v4.new_notebook()
    nb.cells = [v4.new_code_cell(""), v4.new_code_cell("")]
    nbformat.write(nb, path)
    first, second = (c["id"] for c in nb.cells)
    go = tmp_path / "go"
    editors = [
        subprocess.Popen(
            [sys.executable, "-c", EDITOR, str(path), cell_id, tag, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for cell_id, tag in ((first, "a"), (second, "b"))
    ]
    for editor in editors:
        assert editor.stdout is not None and editor.stdout.readline().strip() == "ready"
    go.touch()  # both start editing at once
    for editor in editors:
        _, err = editor.communicate(timeout=120)
        assert editor.returncode == 0, err
    cells = nbformat.read(path, as_version=4).cells
    assert cells[0].source == "".join(f"a{i}\n" for i in range(20))
    assert cells[1].source == "".join(f"b{i}\n" for i in range(20))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["go", "shared.ipynb"]  # no lock, no temp


def test_a_lock_file_left_behind_does_not_block_edits(tmp_path: Path) -> None:
    path = tmp_path / "n.ipynb"
    nb = v4.new_notebook()
    nb.cells = [v4.new_code_cell("x = 1")]
    nbformat.write(nb, path)
    Path(lock_path(str(path))).write_text("")  # e.g. from a process killed while editing
    doc = FileNotebook(path)
    doc.insert_cell("y = 2")
    assert [c.source for c in doc.read()] == ["x = 1", "y = 2"]
    assert lock_path(str(path)).endswith("/.n.ipynb.nbagent.lock")


def write_v3(path: Path) -> None:
    cells = [
        v3.new_code_cell(
            input="x = 1",
            prompt_number=1,
            outputs=[v3.new_output("stream", output_text="hi\n")],
        ),
        v3.new_text_cell("markdown", source="# Title"),
    ]
    path.write_text(
        nbformat.writes(v3.new_notebook(worksheets=[v3.new_worksheet(cells=cells)]), version=3)
    )


def test_an_nbformat_3_notebook_is_read_and_saved_as_version_4_with_a_notice(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.ipynb"
    write_v3(path)
    doc = FileNotebook(path)
    cells = doc.read()
    assert [(c.cell_type, c.source) for c in cells] == [("code", "x = 1"), ("markdown", "# Title")]
    assert [c.id for c in cells] == [c.id for c in doc.read()] == ["cell-0", "cell-1"]  # stable
    assert cells[0].outputs[0]["text"] == "hi\n"
    assert json.loads(path.read_text())["nbformat"] == 3  # reading never rewrites it

    tools = {t.name: t for t in notebook_tools(lambda: doc)}
    shown = tools["read_notebook"].call({}).text()
    assert "nbformat 3" in shown and "saves it as nbformat 4" in shown

    doc.edit_cell("cell-1", "# New title", cells[1].hash)
    saved = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    assert saved.nbformat == 4 and saved.nbformat_minor >= 5
    nbformat.validate(saved)
    assert [c.source for c in saved.cells] == ["x = 1", "# New title"]
    notice = doc.pop_notice()
    assert notice is not None and "was in nbformat 3" in notice and "nbformat 4" in notice
    assert doc.pop_notice() is None and doc.read_notice is None


def test_a_fifo_named_like_a_notebook_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "pipe.ipynb"
    os.mkfifo(path)
    with pytest.raises(ToolError, match="not a regular file"):
        FileNotebook(path).read()


def test_the_file_backend_does_not_import_nbformat_until_used() -> None:
    probe = (
        "import sys\n"
        "import nbagent.notebook.file_backend, nbagent.notebook\n"
        "assert 'nbformat' not in sys.modules, 'nbformat imported at module import time'\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

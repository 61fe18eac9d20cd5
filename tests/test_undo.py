"""Review and undo of a turn's changes, at the Python level.

Each change is made the way the tools make it (the notebook document API with its
hash precondition, an atomic file write, code run in a real IPython namespace), with
the `Recorder` hooks called where the tools call them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pandas as pd
import pytest

from nbagent.notebook.document import source_hash
from nbagent.notebook.file_backend import FileNotebook
from nbagent.tools.workspace import atomic_write
from nbagent.undo import Recorder

# -- the tools' side of the hooks ----------------------------------------------------------


def edit_cell(rec: Recorder, doc: FileNotebook, cell_id: str, source: str) -> None:
    expected = source_hash(next(c.source for c in doc.read() if c.id == cell_id))
    token = rec.cell_will_change(doc, cell_id)
    doc.edit_cell(cell_id, source, expected)
    rec.cell_edited(token, expected, source)


def delete_cell(rec: Recorder, doc: FileNotebook, cell_id: str) -> None:
    expected = source_hash(next(c.source for c in doc.read() if c.id == cell_id))
    token = rec.cell_will_change(doc, cell_id)
    doc.delete_cell(cell_id, expected)
    rec.cell_deleted(token, expected)


def insert_cell(rec: Recorder, doc: FileNotebook, source: str, after: str | None) -> str:
    cell_id = doc.insert_cell(source, "code", after)
    rec.cell_inserted(doc, cell_id, source, "code")
    return cell_id


def write_file(rec: Recorder, path: Path, text: str) -> None:
    token = rec.file_will_change(path, path.name)
    atomic_write(path, text)
    rec.file_did_change(token, text.encode())


def delete_file(rec: Recorder, path: Path) -> None:
    token = rec.file_will_change(path, path.name)
    path.unlink()
    rec.file_did_change(token)


def run_python(rec: Recorder, shell: Any, code: str) -> None:
    token = rec.python_will_run(
        code, shell.user_ns, transform=shell.transform_cell, hidden=shell.user_ns_hidden
    )
    try:
        shell.run_cell(code, store_history=False)
    finally:
        rec.python_did_run(token)


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def notebook(tmp_path: Path) -> FileNotebook:
    nb = nbformat.v4.new_notebook()
    for i, source in enumerate(["import pandas as pd", "df = load()", "df.plot()", "notes"]):
        cell = nbformat.v4.new_code_cell(source)
        cell["id"] = f"c{i}"
        nb.cells.append(cell)
    path = tmp_path / "analysis.ipynb"
    nbformat.write(nb, str(path))
    return FileNotebook(path)


def sources(doc: FileNotebook) -> list[tuple[str, str]]:
    return [(c.id, c.source) for c in doc.read()]


# -- the four changes of one turn -------------------------------------------------------------


def test_undo_restores_an_edited_and_a_deleted_cell_a_file_and_a_dataframe(
    notebook, tmp_path, ipython
):
    ipython.user_ns["df"] = original = pd.DataFrame({"a": [1.0, None, 3.0], "b": [4, 5, 6]})
    report_file = tmp_path / "report.md"
    report_file.write_text("# Report\nold numbers\n")
    rec = Recorder()

    rec.begin_turn("clean the data and update the report")
    edit_cell(rec, notebook, "c1", "df = load().dropna()")
    delete_cell(rec, notebook, "c2")
    write_file(rec, report_file, "# Report\nnew numbers\n")
    run_python(rec, ipython, "df = df.dropna()")
    assert len(ipython.user_ns["df"]) == 2
    # Meanwhile the user edits another cell; that edit must survive the undo.
    notebook.edit_cell("c3", "my own notes", source_hash("notes"))

    text = rec.changes_text()
    assert "clean the data" in text
    assert "-df = load()" in text and "+df = load().dropna()" in text
    assert "cell 'c2'" in text and "deleted" in text and "-df.plot()" in text
    assert "report.md: changed" in text and "+new numbers" in text
    assert "df: rebound (DataFrame (3, 2) -> DataFrame (2, 2))" in text

    report = rec.undo()
    assert report.not_restored == []
    assert len(report.restored) == 4
    cells = sources(notebook)
    assert [s for _, s in cells] == [
        "import pandas as pd",
        "df = load()",
        "df.plot()",
        "my own notes",
    ]
    assert cells[0][0] == "c0" and cells[1][0] == "c1" and cells[3][0] == "c3"
    assert report_file.read_text() == "# Report\nold numbers\n"
    assert ipython.user_ns["df"] is original
    assert "turn 1" in report.note() and "df" in report.note()


def test_a_large_object_beyond_the_snapshot_limit_is_reported_as_not_restorable(ipython):
    ipython.user_ns["big"] = big = np.zeros(1_000_000)  # 8 MB
    ipython.user_ns["small"] = np.zeros(10)
    ipython.user_ns["wide"] = np.ones(1_000_000)
    rec = Recorder(snapshot_mb=1)
    rec.begin_turn("scale")
    run_python(rec, ipython, "big += 1\nsmall += 1\nwide = wide * 2")
    text = rec.changes_text()
    assert "big: changed in place" in text and "cannot be undone" in text
    report = rec.undo()
    problems = "\n".join(report.not_restored)
    assert "variable big: it was changed in place, and it is too large to keep a copy" in problems
    assert "7.6 MB" in problems and "1.0 MB" in problems
    assert "variable wide: keeping its old value would hold 7.6 MB" in problems
    assert ipython.user_ns["big"] is big and big[0] == 1, "left as it is"
    assert ipython.user_ns["small"][0] == 0, "a small array is restored"
    assert "NOT restored: variable big" in report.text()


# -- cells ------------------------------------------------------------------------------------


def test_a_cell_the_user_changed_after_the_turn_keeps_the_users_version(notebook):
    rec = Recorder()
    rec.begin_turn("edit")
    edit_cell(rec, notebook, "c1", "agent version")
    notebook.edit_cell("c1", "user version", source_hash("agent version"))
    report = rec.undo()
    assert report.restored == []
    assert (
        "cell 'c1': it was changed after the turn, so your version was kept" in report.not_restored
    )
    assert dict(sources(notebook))["c1"] == "user version"


def test_inserted_cells_are_removed_and_deleted_neighbours_come_back_in_order(notebook):
    rec = Recorder()
    rec.begin_turn("reshape")
    new = insert_cell(rec, notebook, "print('added')", "c0")
    edit_cell(rec, notebook, new, "print('added and edited')")
    delete_cell(rec, notebook, "c1")
    delete_cell(rec, notebook, "c2")
    gone = insert_cell(rec, notebook, "temporary", None)
    delete_cell(rec, notebook, gone)
    report = rec.undo()
    assert report.not_restored == []
    assert [s for _, s in sources(notebook)] == [
        "import pandas as pd",
        "df = load()",
        "df.plot()",
        "notes",
    ]


def test_a_deleted_first_cell_comes_back_first(notebook):
    rec = Recorder()
    rec.begin_turn("drop imports")
    delete_cell(rec, notebook, "c0")
    report = rec.undo()
    assert "is back as cell" in report.restored[0]
    assert [s for _, s in sources(notebook)][:2] == ["import pandas as pd", "df = load()"]


def test_repeated_undo_walks_back_and_follows_restored_cells(notebook, ipython):
    rec = Recorder()
    rec.begin_turn("one")
    edit_cell(rec, notebook, "c1", "v1")
    run_python(rec, ipython, "x = 1")
    rec.begin_turn("nothing changed")
    rec.begin_turn("two")
    edit_cell(rec, notebook, "c1", "v2")
    delete_cell(rec, notebook, "c1")
    run_python(rec, ipython, "x = 2")

    assert rec.undo().turn == 3
    assert dict(sources(notebook)).get("c1") is None, "c1 came back with a new id"
    assert [s for _, s in sources(notebook)][1] == "v1"
    assert ipython.user_ns["x"] == 1
    second = rec.undo()
    assert second.turn == 1 and second.not_restored == []
    assert [s for _, s in sources(notebook)][1] == "df = load()"
    assert "x" not in ipython.user_ns
    assert rec.undo().nothing_to_undo
    assert "Nothing to undo" in rec.undo().text()


# -- files --------------------------------------------------------------------------------------


def test_files_created_and_deleted_are_undone_and_user_changes_are_kept(tmp_path):
    rec = Recorder()
    created, doomed, touched = tmp_path / "new.txt", tmp_path / "old.csv", tmp_path / "kept.txt"
    doomed.write_text("a,b\n1,2\n")
    doomed.chmod(0o640)
    touched.write_text("before")
    rec.begin_turn("files")
    write_file(rec, created, "hello")
    delete_file(rec, doomed)
    write_file(rec, touched, "agent")
    touched.write_text("user")  # the user changes it after the turn
    text = rec.changes_text()
    assert "new.txt: created" in text and "old.csv: deleted" in text
    report = rec.undo()
    assert not created.exists()
    assert doomed.read_text() == "a,b\n1,2\n" and doomed.stat().st_mode & 0o777 == 0o640
    assert touched.read_text() == "user"
    assert report.not_restored == [
        "kept.txt: it was changed after the turn, so it was left as it is"
    ]


def test_a_deleted_directory_comes_back_with_its_files(tmp_path):
    import shutil

    folder = tmp_path / "out"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("A")
    (folder / "sub" / "b.bin").write_bytes(b"\0\1")
    rec = Recorder()
    rec.begin_turn("clean up")
    token = rec.file_will_change(folder, "out")
    shutil.rmtree(folder)
    rec.file_did_change(token)
    assert "out: directory deleted (2 files)" in rec.changes_text()
    assert rec.undo().not_restored == []
    assert (folder / "a.txt").read_text() == "A" and (
        folder / "sub" / "b.bin"
    ).read_bytes() == b"\0\1"


# -- variables ----------------------------------------------------------------------------------


def test_in_place_changes_are_restored_from_copies_across_turns(ipython):
    ipython.user_ns["frame"] = pd.DataFrame({"a": [1, 2]})
    ipython.user_ns["items"] = [1, 2]
    rec = Recorder()
    rec.begin_turn("first")
    run_python(rec, ipython, "frame['b'] = 0\nitems.append(3)")
    rec.begin_turn("second")
    run_python(rec, ipython, "%time frame.loc[0, 'a'] = 99")  # IPython syntax is read too
    assert "frame: changed in place" in rec.changes_text()
    rec.undo()
    assert ipython.user_ns["frame"].loc[0, "a"] == 1 and "b" in ipython.user_ns["frame"]
    report = rec.undo()
    assert report.not_restored == []
    assert list(ipython.user_ns["frame"].columns) == ["a"]
    assert ipython.user_ns["items"] == [1, 2]


def test_objects_that_cannot_be_copied_are_reported_not_copied(ipython):
    class Model:
        def __init__(self) -> None:
            self.fitted = False

        def fit(self) -> None:
            self.fitted = True

    ipython.user_ns["model"] = Model()
    ipython.user_ns["n"] = 5
    rec = Recorder()
    rec.begin_turn("fit")
    run_python(rec, ipython, "model.fit()\nprint(n)")
    (problem,) = rec.undo().not_restored
    assert problem.startswith("variable model: it may have been changed in place")
    assert "a Model cannot be copied safely" in problem


def test_names_changed_without_appearing_in_the_code_are_still_restored(ipython):
    ipython.user_ns["hidden_target"] = "before"
    rec = Recorder()
    rec.begin_turn("indirect")
    run_python(rec, ipython, "globals()['hidden_target'] = 'after'\nexec('made = 1')")
    report = rec.undo()
    assert report.not_restored == []
    assert ipython.user_ns["hidden_target"] == "before" and "made" not in ipython.user_ns


def test_a_variable_the_user_rebound_after_the_turn_is_left_alone(ipython):
    rec = Recorder()
    rec.begin_turn("define")
    run_python(rec, ipython, "answer = [42]")
    ipython.user_ns["answer"] = [43]
    report = rec.undo()
    assert report.not_restored == [
        "variable answer: it was changed after the turn, so it was left as it is"
    ]
    assert ipython.user_ns["answer"] == [43]


def test_file_tool_locations_map_to_paths_that_undo_restores(tmp_path):
    from nbagent.tools.workspace import Workspace, write_atomic_at
    from nbagent.undo import location_path

    ws = Workspace(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "t.csv").write_text("x\n")
    rec = Recorder()
    rec.begin_turn("write through the workspace")
    with ws.locate("data/t.csv") as loc:  # as create_file does
        token = rec.file_will_change(location_path(ws.root, loc), "data/t.csv")
        write_atomic_at(loc.dir_fd, loc.name, b"y\n")
        rec.file_did_change(token, b"y\n")
    assert "data/t.csv: changed" in rec.changes_text()
    assert rec.undo().restored == ["data/t.csv: its content before the turn"]
    assert (tmp_path / "data" / "t.csv").read_text() == "x\n"


def test_a_failing_hook_never_fails_the_tool_and_marks_the_change_not_restorable(notebook):
    class Unreadable:
        path = "broken.ipynb"

        def read(self) -> list[Any]:
            raise OSError("the frontend went away")

    rec = Recorder()
    rec.begin_turn("edit")
    token = rec.cell_will_change(Unreadable(), "c1")  # type: ignore[arg-type]
    rec.cell_edited(token, source_hash("old"), "new")
    token = rec.python_will_run("x = 1", None)  # type: ignore[arg-type]
    rec.python_did_run(token)
    (problem,) = rec.undo().not_restored
    assert problem.startswith("cell 'c1': the source before is unknown: it could not be read")


def test_old_turns_release_their_snapshots_to_bound_memory(ipython):
    rec = Recorder(snapshot_mb=1)  # all turns together keep at most 4 MB
    for i in range(6):
        ipython.user_ns["arr"] = np.zeros(100_000)  # 0.8 MB, rebound by each turn
        rec.begin_turn(f"turn {i}")
        run_python(rec, ipython, "arr = arr + 1")
    assert sum(t.used for t in rec.turns) <= 4 * 1024 * 1024
    first = rec.turns[0].variables["arr"]
    assert first.problem is not None and "released" in first.problem
    assert rec.turns[-1].variables["arr"].problem is None


def test_the_sidebar_lists_turns_and_reverts_through_an_older_one(ipython):
    rec = Recorder()
    for value in (1, 2, 3):
        rec.begin_turn(f"set {value}")
        run_python(rec, ipython, f"level = {value}")
    summaries = rec.turn_summaries()
    assert [s["turn"] for s in summaries] == [3, 2, 1]
    assert summaries[0]["variables"] == 1 and "level: rebound" in summaries[0]["diff"]
    reports = rec.undo_through(2)
    assert [r.turn for r in reports] == [3, 2]
    assert ipython.user_ns["level"] == 1
    assert [s["undone"] for s in rec.turn_summaries()] == [True, True, False]

"""The live-namespace tools, run against a real IPython InteractiveShell."""

from __future__ import annotations

import base64
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

from nbagent.events import ToolOutput
from nbagent.jupyter.live import live_tools, strip_ansi
from nbagent.tools.base import ToolError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Live:
    def __init__(self, shell: InteractiveShell) -> None:
        self.shell = shell
        self.displayed: list[list[dict[str, Any]]] = []
        self.tools = {t.name: t for t in live_tools(shell, on_display=self.displayed.append)}

    def run(self, code: str) -> ToolOutput:
        return self.tools["run_python"].call({"code": code})

    def variables(self) -> str:
        return self.tools["list_variables"].call({}).text()

    def inspect(self, name: str) -> str:
        return self.tools["inspect_variable"].call({"name": name}).text()


@pytest.fixture
def shell(ipython: InteractiveShell) -> InteractiveShell:
    return ipython


@pytest.fixture
def live(shell: InteractiveShell) -> Live:
    return Live(shell)


@pytest.fixture
def inline_backend(shell: InteractiveShell) -> Iterator[None]:
    """`%matplotlib inline` on the test shell, undone afterwards."""
    import matplotlib
    import matplotlib.pyplot as plt
    from matplotlib_inline.backend_inline import configure_inline_support

    previous = matplotlib.get_backend()
    plt.switch_backend("module://matplotlib_inline.backend_inline")
    configure_inline_support(shell, "inline")
    try:
        yield
    finally:
        configure_inline_support(shell, previous)
        plt.switch_backend(previous)


def test_tools_and_categories(live: Live) -> None:
    tools = live.tools
    assert list(tools) == ["run_python", "list_variables", "inspect_variable"]
    assert tools["run_python"].category == "execute" and not tools["run_python"].read_only
    assert tools["list_variables"].read_only and tools["inspect_variable"].read_only
    for t in tools.values():
        assert t.to_param()["input_schema"]["type"] == "object"


def test_run_python_defines_variable_in_user_namespace(live: Live, shell: InteractiveShell) -> None:
    out = live.run("zz_answer = 6 * 7")
    assert not out.is_error
    assert shell.user_ns["zz_answer"] == 42
    assert out.summary == "(no output)"
    # And later runs see it, like a notebook.
    assert "43" in live.run("zz_answer + 1").text()


def test_stdout_stderr_and_last_expression(live: Live) -> None:
    out = live.run("import sys\nprint('hello out')\nprint('oops', file=sys.stderr)\n'the value'")
    text = out.text()
    assert "[stdout]\nhello out" in text
    assert "[stderr]\noops" in text
    assert "[Out]\n'the value'" in text
    assert out.summary == "hello out (+2 lines)"
    assert isinstance(out.content, list) and out.content[0]["type"] == "text"


def test_history_and_execution_count_untouched(live: Live, shell: InteractiveShell) -> None:
    count = shell.execution_count
    n_in = len(shell.user_ns["In"])
    out_keys = set(shell.user_ns["Out"])
    underscore = shell.user_ns.get("_")
    live.run("12345")
    live.run("1/0")
    assert shell.execution_count == count
    assert len(shell.user_ns["In"]) == n_in
    assert set(shell.user_ns["Out"]) == out_keys
    assert shell.user_ns.get("_") is underscore
    # The capture is undone.
    assert sys.displayhook is not None and type(sys.displayhook).__name__ != "_ResultHook"
    assert "_showtraceback" not in shell.__dict__


def test_exception_is_error_with_name_and_traceback(live: Live) -> None:
    out = live.run("def inner():\n    return undefined_thing\n\ninner()")
    assert out.is_error
    assert out.summary == "NameError: name 'undefined_thing' is not defined"
    text = out.text()
    assert "NameError" in text and "inner()" in text
    assert "\x1b[" not in text  # ANSI colours stripped


def test_long_traceback_is_clipped(live: Live) -> None:
    # Distinct functions, so IPython does not fold the frames as recursion.
    chain = "".join(f"def zz_f{i}():\n    return zz_f{i + 1}()\n" for i in range(15))
    out = live.run(chain + "def zz_f15():\n    return 1/0\nzz_f0()")
    assert out.is_error and out.summary.startswith("ZeroDivisionError")
    text = out.text()
    assert "earlier traceback lines left out" in text
    assert text.rstrip().endswith("ZeroDivisionError: division by zero")


def test_syntax_error(live: Live, shell: InteractiveShell) -> None:
    count = shell.execution_count
    out = live.run("def broken(:\n    pass")
    assert out.is_error
    assert out.summary.startswith("SyntaxError")
    assert "SyntaxError" in out.text()
    assert shell.execution_count == count


def test_keyboard_interrupt_propagates(live: Live, shell: InteractiveShell) -> None:
    saved_stdout = sys.stdout
    with pytest.raises(KeyboardInterrupt):
        live.run("zz_before = 1\nraise KeyboardInterrupt")
    assert shell.user_ns["zz_before"] == 1
    assert sys.stdout is saved_stdout
    # The shell still works afterwards.
    assert not live.run("zz_after = 2").is_error


def test_rich_display_goes_to_model_and_on_display(live: Live) -> None:
    out = live.run("from IPython.display import HTML, display\ndisplay(HTML('<b>bold</b>'))")
    assert not out.is_error
    assert "<b>bold</b>" in out.text()
    assert live.displayed and live.displayed[-1][0]["text/html"] == "<b>bold</b>"


def test_html_is_clipped(shell: InteractiveShell) -> None:
    live = Live.__new__(Live)
    live.shell, live.displayed = shell, []
    live.tools = {t.name: t for t in live_tools(shell, max_html_chars=500)}
    out = live.run("from IPython.display import HTML, display\ndisplay(HTML('<p>x</p>' * 1000))")
    assert "output clipped" in out.text()
    assert len(out.text()) < 1500


def _check_png_block(out: ToolOutput) -> None:
    images = out.images()
    assert len(images) == 1
    source = images[0]["source"]
    assert source["type"] == "base64" and source["media_type"] == "image/png"
    assert base64.b64decode(source["data"]).startswith(PNG_MAGIC)


@pytest.mark.usefixtures("inline_backend")
def test_matplotlib_inline_plot_yields_image(live: Live) -> None:
    out = live.run("import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('t')")
    assert not out.is_error, out.text()
    _check_png_block(out)
    assert "1 image" in out.summary
    assert any("image/png" in bundle for batch in live.displayed for bundle in batch)
    bundle = next(b for batch in live.displayed for b in batch if "image/png" in b)
    assert base64.b64decode(bundle["image/png"]).startswith(PNG_MAGIC)
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []  # the inline backend closed it


def test_matplotlib_unshown_figure_rendered_with_agg(live: Live) -> None:
    import matplotlib
    import matplotlib.pyplot as plt

    previous = matplotlib.get_backend()
    plt.switch_backend("Agg")
    try:
        kept = plt.figure()  # a figure the user had before: left alone
        out = live.run(
            "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.bar([1, 2], [3, 4])"
        )
        assert not out.is_error, out.text()
        _check_png_block(out)
        assert live.displayed and "image/png" in live.displayed[-1][0]
        assert plt.get_fignums() == [kept.number]
    finally:
        plt.close("all")
        plt.switch_backend(previous)


def test_list_variables(live: Live, shell: InteractiveShell) -> None:
    live.run(
        "import numpy as np\n"
        "import pandas as pd\n"
        "from math import sqrt\n"
        "from collections import OrderedDict\n"
        "zz_df = pd.DataFrame({'a': range(4), 'b': list('wxyz')})\n"
        "zz_arr = np.zeros((2, 3))\n"
        "_zz_private = 1\n"
        "zz_list = [1, 2, 3]\n"
        "def zz_func(x):\n    return x\n"
    )
    text = live.variables()
    rows = {line.split()[0]: line for line in text.splitlines()[2:]}
    assert "DataFrame" in rows["zz_df"] and "(4, 2)" in rows["zz_df"]
    assert "ndarray" in rows["zz_arr"] and "(2, 3)" in rows["zz_arr"] and "48 B" in rows["zz_arr"]
    assert "len 3" in rows["zz_list"]
    assert "function" in rows["zz_func"]
    for hidden in ("np", "pd", "sqrt", "OrderedDict", "_zz_private", "In", "Out", "_", "exit"):
        assert hidden not in rows
    assert list(rows) == sorted(rows, key=str.lower)


def test_list_variables_empty(shell: InteractiveShell) -> None:
    saved = dict(shell.user_ns)
    try:
        shell.reset(new_session=False)
        assert Live(shell).variables() == "No user variables yet."
    finally:
        shell.user_ns.update(saved)


def test_inspect_dataframe(live: Live) -> None:
    live.run(
        "import numpy as np, pandas as pd\n"
        "zz_df = pd.DataFrame({'x': [1.0, np.nan, 3.0, 4.0], 'label': ['a', 'b', None, 'a'],"
        " 'n': [1, 2, 3, 4]})"
    )
    text = live.inspect("zz_df")
    assert "shape (4, 3)" in text
    assert "dtypes:" in text and "float64" in text and "int64" in text
    assert "head(5):" in text
    missing = text.split("missing values per column:")[1].split("\n\n")[0]
    assert "x" in missing and "label" in missing and "n " not in missing
    assert "describe() (numeric)" in text and "mean" in text
    assert "describe() (non-numeric)" in text and "unique" in text


def test_inspect_series(live: Live) -> None:
    live.run("import pandas as pd\nzz_s = pd.Series(['a', 'b', 'a', None], name='letters')")
    text = live.inspect("zz_s")
    assert "name 'letters'" in text and "length 4" in text and "missing 1" in text
    assert "value_counts()" in text
    live.run("zz_num = pd.Series(range(100))")
    text = live.inspect("zz_num")
    assert "describe()" in text and "mean" in text and "value_counts" not in text


def test_inspect_ndarray(live: Live) -> None:
    live.run("import numpy as np\nzz_a = np.arange(12, dtype=float).reshape(3, 4)")
    text = live.inspect("zz_a")
    assert "shape (3, 4)" in text and "dtype float64" in text
    assert "min 0" in text and "max 11" in text and "mean 5.5" in text
    assert "array([[" in text


def test_inspect_dict_list_str_scalar_and_other(live: Live) -> None:
    live.run(
        "zz_d = {'alpha': [1, 2], 'beta': 'text'}\n"
        "zz_l = [1, 'two', 3.0] + list(range(50))\n"
        "zz_str = 'line\\n' * 3\n"
        "zz_int = 7\n"
        "class ZzThing:\n    size = 3\n    def grow(self):\n        pass\n"
        "zz_obj = ZzThing()"
    )
    d = live.inspect("zz_d")
    assert "2 keys" in d and "'alpha'" in d and "list" in d and "str" in d
    lst = live.inspect("zz_l")
    assert "length 53" in lst and "int" in lst and "str" in lst and "more" in lst
    assert "length 15" in live.inspect("zz_str")
    assert "int, value 7" in live.inspect("zz_int")
    obj = live.inspect("zz_obj")
    assert "ZzThing" in obj and "size" in obj and "grow" in obj


def test_inspect_unknown_and_expression(live: Live) -> None:
    with pytest.raises(ToolError, match="No variable named 'nope_missing'"):
        live.inspect("nope_missing")
    with pytest.raises(ToolError, match="plain variable name"):
        live.inspect("df.columns")


def test_inspect_is_clipped(shell: InteractiveShell) -> None:
    shell.user_ns["zz_big"] = "x" * 50_000
    tools = {t.name: t for t in live_tools(shell, max_chars=1000)}
    text = tools["inspect_variable"].call({"name": "zz_big"}).text()
    assert len(text) < 1300


def test_strip_ansi() -> None:
    assert strip_ansi("\x1b[0;31mError\x1b[0m: x") == "Error: x"


def test_live_runner_gives_cell_outputs_without_model_labels(shell: InteractiveShell) -> None:
    """run_cell stores these in the notebook: what a cell would show, not [stdout] labels."""
    from nbagent.jupyter.live import live_runner

    run = live_runner(shell)
    output, outputs = run("print(6 * 7)\n'done'")
    assert "[stdout]" in output.text()
    assert outputs[0] == {"output_type": "stream", "name": "stdout", "text": "42\n"}
    assert outputs[1]["output_type"] == "execute_result"
    assert outputs[1]["data"]["text/plain"] == "'done'"
    output, outputs = run("1/0")
    assert output.is_error
    assert outputs[-1]["output_type"] == "error" and outputs[-1]["ename"] == "ZeroDivisionError"

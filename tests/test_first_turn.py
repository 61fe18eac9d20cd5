"""The first `%%agent` cell of a kernel: a status line at once, and a warm-up after
`%load_ext nbagent` that never gets in the user's way (real kernels, fake API)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest

from tests.fake_anthropic import reply, text
from tests.kernel_helpers import LiveKernel

WARMUP = "import nbagent.jupyter.warmup as warmup\nw = warmup.current(get_ipython())\n"
# Small steps and a short idle wait: many points where the warm-up hands back, soon.
LOAD_IN_SMALL_STEPS = (
    "%load_ext nbagent\n"
    "import nbagent.jupyter.warmup as warmup\n"
    "w = warmup.current(get_ipython())\n"
    "w.step_seconds, w.idle_seconds = 0.0005, 0.02"
)


@pytest.fixture
def kernel(fake_api, in_tmp) -> Iterator[LiveKernel]:
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)
    k = LiveKernel(str(in_tmp), env=env)
    try:
        yield k
    finally:
        k.stop()


def printed(kernel: LiveKernel, code: str) -> str:
    run = kernel.execute(code)
    assert run.status == "ok", run.error_text()
    return run.text().strip()


def wait_until(kernel: LiveKernel, condition: str, timeout: float = 120) -> None:
    """Run `print(<condition>)` now and then, leaving the kernel idle in between."""
    deadline = time.monotonic() + timeout
    while printed(kernel, WARMUP + f"print({condition})") != "True":
        assert time.monotonic() < deadline, f"never: {condition}"
        time.sleep(0.2)


class Shown:
    """IPython's display(): the outputs as they stand, display-id updates applied."""

    def __init__(self) -> None:
        self.outputs: list[dict] = []

    def __call__(self, bundle: dict, *, raw: bool, display_id: bool = False) -> object:
        self.outputs.append(bundle)
        index, outputs = len(self.outputs) - 1, self.outputs

        class Handle:
            def update(self, new: dict, *, raw: bool) -> None:
                outputs[index] = new

        return Handle()


def test_a_cell_output_shows_its_status_when_created_and_an_abort_replaces_it():
    from nbagent.jupyter.cell_output import CellOutput
    from nbagent.render.transcript import Transcript

    shown = Shown()
    out = CellOutput(Transcript(), display=shown)
    assert [o["text/plain"] for o in shown.outputs] == ["[nbagent: starting…]"]
    out.abort("%%agent: no API key")
    assert [o["text/plain"] for o in shown.outputs] == ["%%agent: no API key"]


def test_the_cell_shows_a_status_while_the_first_request_is_pending(kernel, fake_api):
    assert kernel.execute("%load_ext nbagent").status == "ok"
    status_seen = threading.Event()
    status_shown_before_reply: list[bool] = []

    def respond(body: dict) -> object:
        status_shown_before_reply.append(status_seen.wait(30))
        return reply(text("Hello."))

    fake_api.responder = respond
    msg_id = kernel.client.execute("%%agent\nsay hello")
    first_display = None
    while True:
        msg = kernel.client.get_iopub_msg(timeout=120)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "display_data" and first_display is None:
            first_display = msg["content"]["data"]["text/plain"]
            status_seen.set()
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    assert first_display is not None and "nbagent: starting" in first_display
    assert status_shown_before_reply == [True]
    # A turn that uses no notebook tool loads no notebook-format library.
    check = "import sys\nprint('nbformat' in sys.modules, 'jsonschema' in sys.modules)"
    assert printed(kernel, check) == "False False"


def test_a_user_import_during_the_warm_up_gets_the_whole_sdk(kernel, fake_api):
    printed(kernel, LOAD_IN_SMALL_STEPS)
    # The warm-up stopped half-way through importing the SDK: modules half-initialised.
    wait_until(kernel, "w.suspended_in_import")
    user_cell = (
        "from anthropic.lib.tools import beta_tool\n"
        "import anthropic\n"
        "@beta_tool\n"
        "def add_one(x: int) -> str:\n"
        "    '''Add one to x.'''\n"
        "    return str(x + 1)\n"
        "print(add_one.to_dict()['name'], anthropic.types.Message.__name__,\n"
        "      anthropic.lib.streaming.MessageStream.__name__, anthropic.Anthropic.__name__)"
    )
    assert printed(kernel, user_cell) == "add_one Message MessageStream Anthropic"
    assert printed(kernel, WARMUP + "print(w.stats.finished_for_cells)") == "1"
    wait_until(kernel, "w.state == 'done'")
    fake_api.enqueue("Warm hello.")
    assert "Warm hello." in kernel.execute("%%agent\nsay hello").text()


def test_an_import_in_another_thread_during_the_warm_up_gets_its_own_sdk(kernel):
    printed(kernel, LOAD_IN_SMALL_STEPS)
    wait_until(kernel, "w.suspended_in_import")
    thread_cell = (
        "import threading, sys\n"
        "found = {}\n"
        "def work():\n"
        "    from anthropic.lib.tools import beta_tool\n"
        "    found['sdk'] = sys.modules['anthropic']\n"
        "t = threading.Thread(target=work)\n"
        "t.start(); t.join(120)\n"
        "print(found['sdk'].types.Message.__name__)"
    )
    assert printed(kernel, thread_cell) == "Message"
    wait_until(kernel, "w.state == 'done'")
    same = "import anthropic\nprint(anthropic is found['sdk'], anthropic.lib.streaming.__name__)"
    assert printed(kernel, same) == "True anthropic.lib.streaming"
    assert printed(kernel, WARMUP + "print(w.stats.dropped)") == "1"


def test_a_first_turn_during_the_warm_up_finishes_what_a_turn_needs_first(kernel, fake_api):
    printed(kernel, LOAD_IN_SMALL_STEPS)
    wait_until(kernel, "w.suspended_in_import")
    fake_api.enqueue("Hello mid-warm-up.")
    assert "Hello mid-warm-up." in kernel.execute("%%agent\nsay hello").text()
    # The cell did the turn's parts in one go; what is left is for later, not the turn.
    left = WARMUP + "print(w.stats.for_turn_seconds > 0, [u.turn for u in w.units[w.next_unit:]])"
    shown = printed(kernel, left)
    assert shown.startswith("True [") and "True" not in shown[len("True ") :]
    wait_until(kernel, "w.state == 'done'")
    # The default model's requests go through the beta client: its schemas were the
    # turn's, the other API's were left for later.
    turn_streams = (
        WARMUP + "print(sorted(u.name for u in w.units if u.turn and 'stream' in u.name))"
    )
    assert printed(kernel, turn_streams) == "['beta stream parsing', 'beta stream schemas']"


def test_a_panel_turn_during_the_warm_up_imports_on_the_kernel_thread(kernel, fake_api):
    # The panel's turn runs in a worker thread: importing the SDK there while the warm-up
    # imports it on the kernel's thread deadlocked on the package's import locks now and
    # then (the worker's import failed). The turn's parts are done before it starts.
    printed(kernel, LOAD_IN_SMALL_STEPS)
    wait_until(kernel, "w.suspended_in_import")
    fake_api.enqueue("Hello from the panel.")
    cell = (
        "import nbagent\n"
        "p = nbagent.chat()\n"
        "p.send('hi')\n"
        "p.wait(60)\n"
        "print('Hello from the panel.' in p.history_html())"
    )
    assert printed(kernel, cell) == "True"
    shown = printed(kernel, WARMUP + "print(w.stats.for_turn_seconds > 0, w.stats.failed)")
    assert shown == "True []"


def test_a_thread_does_not_wait_on_the_lock_of_a_module_the_warm_up_has_not_created(kernel):
    # `from .pkg.mod import x` takes mod's import lock, then runs pkg: suspended there,
    # the warm-up holds the lock of a module that is not in sys.modules yet. A thread
    # importing the SDK meanwhile must not wait on it (the cell joining it would hang).
    printed(kernel, LOAD_IN_SMALL_STEPS)
    wait_until(kernel, "bool(set(w._hidden_locks) - set(w._hidden))")
    thread_cell = (
        "import threading, sys\n"
        "found = {}\n"
        "def work():\n"
        "    import anthropic\n"
        "    found['sdk'] = anthropic.types.beta.BetaMessage.__name__\n"
        "t = threading.Thread(target=work)\n"
        "t.start(); t.join(30)\n"
        "print(t.is_alive(), found.get('sdk'))"
    )
    assert printed(kernel, thread_cell) == "False BetaMessage"
    wait_until(kernel, "w.state == 'done'")


def test_a_thread_that_meets_a_half_done_import_is_not_left_waiting(kernel):
    printed(kernel, LOAD_IN_SMALL_STEPS)
    wait_until(kernel, "w.suspended_in_import")
    # A thread imports the SDK in the middle of a warm-up step (the step runs here, in
    # this cell, so that nothing else runs before the thread is joined): it meets the
    # half-imported module and waits for its import lock.
    cell = WARMUP + (
        "import threading, time\n"
        "go, found = threading.Event(), {}\n"
        "def work():\n"
        "    go.wait()\n"
        "    import anthropic\n"
        "    found['sdk'] = anthropic.types.Message.__name__\n"
        "thread = threading.Thread(target=work)\n"
        "thread.start()\n"
        "step_pause = w.pause\n"
        "def pause():\n"
        "    if w._stack and not go.is_set():\n"
        "        go.set()\n"
        "        time.sleep(0.3)\n"
        "    step_pause()\n"
        "w.pause = pause\n"
        "w._step()\n"
        "thread.join(30)\n"
        "print(found.get('sdk'))"
    )
    assert printed(kernel, cell) == "Message"


def test_the_warm_up_waits_while_cells_run_or_wait_to_run(kernel):
    # Run All: the load cell, a cell that gives the event loop back for a while, and a
    # cell behind it. No idle wait at all here: only running and queued cells stop it.
    load = LOAD_IN_SMALL_STEPS.replace("0.02", "0")
    sleeper = "import asyncio\nawait asyncio.sleep(0.5)"
    count = WARMUP + "print(w.stats.steps)"
    ids = [kernel.client.execute(code) for code in (load, sleeper, count)]
    runs = [kernel.collect(msg_id) for msg_id in ids]
    assert all(run.status == "ok" for run in runs), [r.error_text() for r in runs]
    assert runs[2].text().strip() == "0"
    wait_until(kernel, "w.stats.steps > 0")


def test_a_first_turn_after_the_warm_up_imports_nothing(kernel, fake_api):
    printed(
        kernel,
        "%load_ext nbagent\nimport nbagent.jupyter.warmup as warmup\n"
        "warmup.current(get_ipython()).idle_seconds = 0.02",
    )
    wait_until(kernel, "w.state == 'done'")
    printed(kernel, "import sys\nbefore = set(sys.modules)")
    fake_api.enqueue("Hello.")
    assert "Hello." in kernel.execute("%%agent\nsay hello").text()
    new = printed(kernel, "print(sorted(set(sys.modules) - before))")
    assert new == "[]", new
    assert printed(kernel, WARMUP + "print(w.stats.failed)") == "[]"
    notebook_libraries = "print('nbformat' in sys.modules, 'jsonschema' in sys.modules)"
    assert printed(kernel, notebook_libraries) == "False False"


def test_unloading_in_the_middle_of_the_warm_up_leaves_a_working_sdk(kernel):
    printed(kernel, LOAD_IN_SMALL_STEPS)
    wait_until(kernel, "w.suspended_in_import")
    printed(kernel, "%unload_ext nbagent")
    check = (
        "import sys, anthropic\n"
        "print(anthropic.types.Message.__name__, "
        "any(type(f).__name__ == '_PausingFinder' for f in sys.meta_path))"
    )
    assert printed(kernel, check) == "Message False"

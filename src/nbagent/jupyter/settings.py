"""`NBAgent`: nbagent's IPython configuration.

    %config NBAgent.model = "claude-sonnet-4-6"
    # or in ipython_config.py:
    c.NBAgent.permission_mode = "ask"
    c.InteractiveShellApp.extensions = ["nbagent"]

Unset options (None) fall back to the environment, `.env`, then defaults
(see `nbagent.config`).
"""

from __future__ import annotations

from traitlets import Bool, CaselessStrEnum, Float, Int, Unicode
from traitlets.config import Configurable


class NBAgent(Configurable):
    model = Unicode(
        None,
        allow_none=True,
        help="Model name (default: ANTHROPIC_MODEL_NAME, else claude-opus-4-8).",
    ).tag(config=True)
    max_turns = Int(
        None, allow_none=True, help="Rounds of tool use per turn (default: MAX_TURNS, else 100)."
    ).tag(config=True)
    permission_mode = CaselessStrEnum(
        ["auto", "ask", "read-only"],
        default_value="auto",
        help="auto: run tools freely; ask: confirm writes and execution; read-only: refuse all but reads.",
    ).tag(config=True)
    headless_approval = CaselessStrEnum(
        ["deny", "allow"],
        default_value="deny",
        help="In 'ask' mode without stdin (nbclient, papermill): what to answer for tools needing approval.",
    ).tag(config=True)
    workspace = Unicode(".", help="Root directory of the file and shell tools.").tag(config=True)
    system_prompt = Unicode(
        None,
        allow_none=True,
        help="System prompt (default: SYSTEM_PROMPT_FILE, ./system_prompt.txt, or built-in).",
    ).tag(config=True)
    thinking = CaselessStrEnum(
        ["adaptive", "off"],
        default_value="adaptive",
        help="Adaptive thinking, where the model supports it.",
    ).tag(config=True)
    effort = CaselessStrEnum(
        ["low", "medium", "high", "max"],
        default_value=None,
        allow_none=True,
        help="Effort level sent as output_config.effort.",
    ).tag(config=True)
    show_thinking = Bool(True, help="Show the model's thinking (dimmed) in cell output.").tag(
        config=True
    )
    max_tokens = Int(32_000, help="Output token limit per request.").tag(config=True)
    max_retries = Int(2, help="SDK retries on 429, 5xx and connection errors.").tag(config=True)
    max_tool_output_chars = Int(
        30_000, help="Tool outputs longer than this are clipped, with a notice."
    ).tag(config=True)
    max_repr_chars = Int(
        2_000, help="Clip {variable} interpolations in prompts to this many characters."
    ).tag(config=True)
    update_interval = Float(0.1, help="Seconds between updates of the streaming cell output.").tag(
        config=True
    )
    shell_timeout = Float(
        30.0, help="Timeout in seconds for shell and Python-subprocess tools."
    ).tag(config=True)

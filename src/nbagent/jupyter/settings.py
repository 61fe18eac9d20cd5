"""`NBAgent`: nbagent's IPython configuration, derived from `nbagent.options`.

    %config NBAgent.model = "claude-sonnet-4-6"
    # or in ipython_config.py:
    c.NBAgent.permission_mode = "ask"
    c.InteractiveShellApp.extensions = ["nbagent"]

Every trait defaults to None, meaning "not set here": the value then comes from the
environment, `.env`, or the option's default. Values are read at the start of every
turn, so a `%config` change holds from the next turn on, on every surface.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from traitlets import Bool, CaselessStrEnum, Dict, Float, Int, List, TraitType, Unicode
from traitlets.config import Configurable

from ..options import OPTIONS, Option


def _trait(opt: Option) -> TraitType[Any, Any]:
    default = "unset" if opt.default is None else repr(opt.default)
    env = f" Environment: {opt.env}." if opt.env else ""
    help_text = f"{opt.help} (default: {default}){env}"
    kwargs: dict[str, Any] = {"default_value": None, "allow_none": True, "help": help_text}
    if opt.choices is not None:
        return CaselessStrEnum(list(opt.choices), **kwargs).tag(config=True)
    kind: dict[type, type[TraitType[Any, Any]]] = {
        bool: Bool,
        int: Int,
        float: Float,
        str: Unicode,
        list: List,
        dict: Dict,
    }
    return kind[opt.kind](**kwargs).tag(config=True)


if TYPE_CHECKING:

    class NBAgent(Configurable):
        def __getattr__(self, name: str) -> Any: ...
        def __setattr__(self, name: str, value: Any) -> None: ...

else:
    NBAgent = type(
        "NBAgent",
        (Configurable,),
        {
            "__doc__": "nbagent's options (see `%config NBAgent`); None means not set here.",
            "__module__": __name__,
            **{opt.name: _trait(opt) for opt in OPTIONS},
        },
    )


def configured(settings: Configurable) -> dict[str, Any]:
    """The options set through IPython configuration (traits that are not None)."""
    values = {opt.name: getattr(settings, opt.name, None) for opt in OPTIONS}
    return {name: value for name, value in values.items() if value is not None}

"""Let `%agent what did you compute?` reach the agent.

IPython reads a trailing `?` as a help request (`HelpEnd`) before any magic runs,
so `%agent ...?` printed "Object 'compute' not found". This cleanup transformer
(`input_transformers_cleanup` runs before the help transform) turns such a line
into the call IPython would make for the magic, with the question mark kept.
"""

from __future__ import annotations

import re

_LINE = re.compile(r"^(?P<indent>[ \t]*)%agent(?P<rest>[ \t].*\?)[ \t]*$")


def keep_question_marks(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        body = line.rstrip("\n")
        match = _LINE.match(body)
        if match is None:
            out.append(line)
            continue
        newline = line[len(body) :]
        rest = match.group("rest").strip()
        out.append(
            f"{match.group('indent')}get_ipython().run_line_magic('agent', {rest!r}){newline}"
        )
    return out

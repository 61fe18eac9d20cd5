"""The terminal surface: `nbagent` (interactive chat) and `nbagent run "prompt"`.

The entry point is `nbagent.cli.main:main`. This package imports nothing on
purpose, so `python -m nbagent.cli.main` runs without a double-import warning.
"""

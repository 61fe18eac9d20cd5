"""The kernel <-> frontend transport: the two comms, their protocol, and event mirroring.

Used by `nbagent.jupyter` (surfaces) and `nbagent.notebook` (the live document);
it depends on neither.
"""

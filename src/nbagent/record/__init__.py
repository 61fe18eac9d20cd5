"""The conversation kept beside the notebook, and replay for headless re-runs.

- `location`: which `.nbagent/` folder (and which notebook's records) a kernel uses.
- `blobs`: images and large outputs stored once, by content hash, and referenced.
- `store`: saved conversations and replay recordings, redacted, written atomically,
  under a size cap.
- `keeper`: which saved conversation a session's history is, saved after each turn.
- `fingerprint`: the normalised hash of a tool result that replay compares.
- `replay`: `RecordingProvider` and `ReplayProvider`, wrappers around any provider.

Nothing here is imported by `%load_ext`; the first turn loads it.
"""

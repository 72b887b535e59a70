"""Survey-agnostic processing stages: decode → mongify → ml → (crossmatch) → store.

Each stage works on a batch of alerts; what differs per survey comes from a
:class:`kowalski.surveys.base.Survey` object passed in.
"""

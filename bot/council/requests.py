"""Which councils may have a human's request to a member waiting (a reply to a member, an @Name).

Moderation (an approved request), the listener (a new one) and a restart (requests made before it) note a
council here; its member turns look for open requests after the turn in progress, once per note.
"""

from __future__ import annotations


class PendingRequests:
    def __init__(self) -> None:
        self._noted: set[int] = set()

    def expect(self, council_id: int) -> None:
        """A human may have asked a member something in this council."""
        self._noted.add(council_id)

    def take(self, council_id: int) -> bool:
        """Whether requests should be looked for now (the note is used up)."""
        if council_id not in self._noted:
            return False
        self._noted.discard(council_id)
        return True

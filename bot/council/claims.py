"""Who posts a council line: exactly one process, even when two run the same council by mistake.

Each engine has a claimant id (`host/pid/random`). A line is claimed in the database before it is posted
(`storage.repository.claim_post`); the writer of a line claims it in the same INSERT, so the usual post costs
no extra statement. A process that loses a claim skips the line and records nothing: the winner posts it.

A claim ends with its process. A restarted process (a new claimant) takes over a claim at once when the
claimant ran on this host and its process is gone; a claim from elsewhere only once it is older than
CLAIM_LEASE. Either way the taker posts as `recovering`, looking in the thread first, because the dead
claimant may have posted before it could record the post.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from datetime import datetime, timedelta

from storage import repository as repo
from storage.database import Database
from storage.models import CouncilMessage, utcnow
from storage.repository import PostClaim

log = logging.getLogger(__name__)

# Far longer than a post takes (Discord rate limits included); a streamer renews its claim with every save.
CLAIM_LEASE = timedelta(seconds=60)
_HOST = socket.gethostname()


def new_claimant() -> str:
    return f"{_HOST[:60]}/{os.getpid()}/{uuid.uuid4().hex[:16]}"


def is_gone(claimant: str) -> bool:
    """Whether the claimant's process has certainly ended: it ran on this host and its pid is free.
    Anything not known for sure (another host, this very process, no way to ask) counts as alive."""
    parts = claimant.rsplit("/", 2)
    if len(parts) != 3 or parts[0] != _HOST[:60] or not parts[1].isdigit() or os.name != "posix":
        return False
    pid = int(parts[1])
    if pid == os.getpid():
        return False  # another engine of this process (or, in a container, a predecessor that had our pid)
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # exists, under another user
    return False


class PostClaims:
    """One engine's claims on the lines it posts."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.claimant = new_claimant()

    async def claim(self, message: CouncilMessage) -> PostClaim:
        """Claim the right to post `message`; a line this engine wrote moments ago is its own already."""
        assert message.id is not None
        if self._holds(message, utcnow()):
            return PostClaim(won=True)
        return await repo.claim_post(
            self.db, message.id, self.claimant, stale_before=utcnow() - CLAIM_LEASE, gone=is_gone
        )

    async def release(self) -> None:
        """Let the next process take over at once what this one claimed and did not post (a clean stop)."""
        try:
            await repo.release_claims(self.db, self.claimant)
        except Exception:  # best effort on the way out: unreleased claims lapse after CLAIM_LEASE anyway
            log.warning("Could not release this process's post claims", exc_info=True)

    def _holds(self, message: CouncilMessage, now: datetime) -> bool:
        # Half the lease: a claim about to go stale is renewed in the database instead.
        since = message.claimed_at
        return (
            message.claimed_by == self.claimant
            and since is not None
            and since.tzinfo is not None
            and now - since < CLAIM_LEASE / 2
        )

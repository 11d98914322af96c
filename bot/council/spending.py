"""What a council has spent, in tokens and estimated dollars, and whether it may go on spending."""

from __future__ import annotations

from bot.catalog import Catalog
from storage import deliberation_repository as deliberation_repo
from storage.database import Database
from storage.models import Council


class CouncilSpending:
    def __init__(self, db: Database, catalog: Catalog) -> None:
        self.db = db
        self.catalog = catalog

    async def cost(self, council_id: int) -> float:
        """The council's estimated cost so far, from the catalog's prices for whoever used the tokens."""
        total = 0.0
        for name, (tokens_in, tokens_out) in (await deliberation_repo.tokens_by_author(self.db, council_id)).items():
            spec = self.catalog.get(name)
            if spec is not None:
                total += spec.cost(tokens_in, tokens_out)
        return total

    async def limit_reached(self, council: Council) -> str | None:
        """Why the council must stop now for its token or cost limit, or None."""
        if council.max_tokens is not None and council.tokens_in + council.tokens_out >= council.max_tokens:
            used = council.tokens_in + council.tokens_out
            return f"The council reached its limit of {council.max_tokens:,} tokens ({used:,} used)."
        if council.max_cost is not None:
            cost = await self.cost(council.id)
            if cost >= council.max_cost:
                return f"The council reached its cost limit of ${council.max_cost:,.2f} (about ${cost:,.2f} spent)."
        return None

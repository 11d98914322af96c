"""Council templates: a server's saved compositions (members, roles, mode, rounds), convened again by name.

A template is a permanent council: the councils convened from it are its sessions, and each new session's
members receive the conclusions of the ones before (bot/council/memory.py).
"""

from __future__ import annotations

import dataclasses
import unicodedata

from bot.council.convening import Convening, CouncilPlan
from bot.council.seats import Seat
from bot.council.validation import ConveneError, clean_text, parse_roles
from storage import repository as repo
from storage import template_repository as templates_repo
from storage.database import Database
from storage.models import Council, CouncilTemplate
from storage.template_repository import StoredTemplate

NAME_LIMIT = 50
DEFAULT_ROUNDS = 2
DEFAULT_MODE = "round-robin"


class TemplateError(ValueError):
    """A template request that cannot be honoured; the message is shown to the user as is."""


def clean_template_name(name: str) -> str:
    """The name as stored, or TemplateError: 1-50 visible characters, no control characters."""
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise TemplateError("A template name may not contain control characters (line breaks, tabs and the like).")
    cleaned = clean_text(name)
    if not 1 <= len(cleaned) <= NAME_LIMIT:
        raise TemplateError(f"A template name must be 1 to {NAME_LIMIT} visible characters.")
    return cleaned


class CouncilTemplates:
    """Saving councils as templates and planning councils from them."""

    def __init__(self, db: Database, convening: Convening) -> None:
        self.db = db
        self.convening = convening

    async def find(self, guild_id: int, name: str) -> StoredTemplate:
        stored = await templates_repo.get_template(self.db, guild_id, clean_text(name))
        if stored is None:
            raise TemplateError(
                f"There is no template called {clean_text(name)!r} here; `/council template list` shows them."
            )
        return stored

    async def save(
        self, council: Council, name: str, *, user_id: int, user_name: str, replace: bool
    ) -> tuple[CouncilTemplate, bool]:
        """Save the council's seated members (in order, with their roles), mode and rounds under `name`;
        (the template, whether it replaced one). Raises TemplateExists when the name is taken and not `replace`."""
        members = [member for member in await repo.list_members(self.db, council.id) if not member.dismissed]
        return await templates_repo.save_template(
            self.db,
            guild_id=council.guild_id,
            name=clean_template_name(name),
            mode=council.mode,
            rounds=council.rounds,
            members=[(member.name, member.role) for member in members],
            chair=council.chair if any(member.name == council.chair for member in members) else None,
            max_tokens=council.max_tokens,
            max_cost=council.max_cost,
            created_by_id=user_id,
            created_by_name=user_name,
            replace=replace,
        )

    async def plan(
        self,
        *,
        guild_id: int,
        template: str | None,
        topic: str,
        member_names: str | None,
        roles: str | None,
        rounds: int | None,
        mode: str | None,
        chair: str | None = None,
        max_tokens: int | None = None,
        max_cost: float | None = None,
        language: str | None = None,
        tools: str | None = None,
    ) -> CouncilPlan:
        """A convene request, from a template or not. Options given explicitly override the template's:
        `members` replaces its members, `roles` its roles member by member, the others their own."""
        if template is None:
            if not member_names or not member_names.strip():
                raise ConveneError(
                    "Name the members (e.g. `Claude, DeepSeek, Llama`) or a template (`/council template list`)."
                )
            return self.convening.plan(
                topic=topic,
                member_names=member_names,
                roles=roles,
                rounds=rounds or DEFAULT_ROUNDS,
                mode=mode or DEFAULT_MODE,
                chair=chair,
                max_tokens=max_tokens,
                max_cost=max_cost,
                language=language,
                tools=tools,
            )
        try:
            stored = await self.find(guild_id, template)
        except TemplateError as error:
            raise ConveneError(str(error)) from None
        saved = stored.template
        from_template = not member_names or not member_names.strip()
        try:
            plan = self.convening.plan(
                topic=topic,
                member_names=", ".join(m.name for m in stored.members) if from_template else member_names or "",
                roles=roles,
                rounds=rounds or saved.rounds,
                mode=mode or saved.mode,
                # A saved chair no longer among explicitly named members is left to the default.
                chair=chair or (saved.chair if from_template else None),
                max_tokens=max_tokens if max_tokens is not None else saved.max_tokens,
                max_cost=max_cost if max_cost is not None else saved.max_cost,
                language=language,
                tools=tools,
            )
        except ConveneError as error:
            if from_template:
                raise ConveneError(f"Template {saved.name!r}: {error}") from None
            raise
        explicit = parse_roles(roles or "", [seat.spec for seat in plan.seats])
        saved_roles = {m.name.casefold(): m.role for m in stored.members if m.role}
        seats = tuple(
            Seat(seat.spec, saved_roles[seat.name.casefold()])
            if seat.name not in explicit and seat.name.casefold() in saved_roles
            else seat
            for seat in plan.seats
        )
        return dataclasses.replace(plan, seats=seats, template_id=saved.id)

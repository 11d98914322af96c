"""/council info, usage, export, rate and scoreboard, and the "Message details" menu: what a council did and
what stands behind it."""

from __future__ import annotations

import discord
from discord import app_commands

from bot.council import reports, result_charts
from bot.council.ratings import RatingError
from bot.council.transcript_html import transcript_html
from cogs.council import _charts, _details, _ratings, _reports
from cogs.council._base import CouncilCommands, council, refuse
from storage import ratings_repository as ratings_repo
from storage import repository as repo


class ReportCommands(CouncilCommands):
    @council.command(name="info")
    @app_commands.describe(council_id="The council's number (leave empty inside a council thread)")
    async def info(self, interaction: discord.Interaction, council_id: int | None = None) -> None:
        """Show what stands behind each member: provider, model, settings and its exact system prompt."""
        council = await self._find(interaction, council_id)
        if council is None:
            return
        seats = await self.engine.seats(council.id)
        cards = reports.member_cards(
            seats, council.topic, await self.engine.language(council), await self.engine.member_tools(council, seats)
        )
        await _reports.send_pages(interaction, _reports.info_pages(council, cards))

    @council.command(name="usage")
    @app_commands.describe(
        council_id="The council's number (leave empty inside a council thread)",
        chart="Also draw tokens, cost and latency per member as a chart",
    )
    async def usage(self, interaction: discord.Interaction, council_id: int | None = None, chart: bool = False) -> None:
        """Show each member's turns, failed turns, tool calls, tokens and estimated cost in a council."""
        council = await self._find(interaction, council_id)
        if council is None:
            return
        rows = reports.usage(await self.engine.seats(council.id), await repo.transcript(self.bot.db, council.id))
        embed = _reports.usage_embed(council, rows)
        if not chart:
            await interaction.response.send_message(embed=embed, ephemeral=True)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)  # drawing may take a second or two
        picture = await _charts.usage_picture(council.id or 0, rows, self.bot.catalog)
        if picture is None:
            await interaction.followup.send(embed=embed, ephemeral=True)
            return
        embed.set_image(url=picture.url)
        await interaction.followup.send(embed=embed, file=picture.file(), ephemeral=True)

    @council.command(name="export")
    @app_commands.describe(council_id="The council's number (leave empty inside a council thread)")
    async def export(self, interaction: discord.Interaction, council_id: int | None = None) -> None:
        """Download a council's transcript as Markdown and HTML, and its full record as JSON."""
        council = await self._find(interaction, council_id)
        if council is None:
            return
        record = await reports.load_record(self.bot.db, self.bot.catalog, council)
        if not await self._is_moderator(interaction):
            record = reports.without_moderators_notes(record)
        spoken = await self.engine.language(council)
        drawing = result_charts.has_charts(record)
        charts: dict[int, bytes] = {}
        if drawing:  # the page shows their charts: drawing takes a second, so answer once it is done
            await interaction.response.defer(ephemeral=True, thinking=True)
            for chart in await result_charts.record_charts(
                record,
                result_charts.colours(self.bot.catalog),
                lambda line: self.engine.ratings.board_of(council, line),
            ):
                charts[chart.line_id] = chart.png
        html = transcript_html(record, language=spoken.code if spoken else None, charts=charts)
        page = _reports.export_page(council, reports.export_markdown(record), reports.export_json(record), html)
        if drawing:
            await interaction.followup.send(**page.send_options())  # type: ignore[arg-type]
        else:
            await _reports.send_pages(interaction, [page])

    @council.command(name="rate")
    async def rate(self, interaction: discord.Interaction) -> None:
        """Have this thread's members rate each other (clarity, insight, self-awareness) and post the scoreboard."""
        council = await self._find_controllable(interaction)
        if council is None:
            return
        # One provider call per member: acknowledge first, Discord allows three seconds.
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            board = await self.engine.ratings.rate(council.id)
        except RatingError as error:
            await interaction.followup.send(str(error), ephemeral=True)
            return
        problems = f" {len(board.problems)} rater(s) could not be counted in full." if board.problems else ""
        await interaction.followup.send(
            f"The members of council #{council.id} rated each other; the scoreboard is in the thread.{problems}",
            ephemeral=True,
        )

    @council.command(name="scoreboard")
    async def scoreboard(self, interaction: discord.Interaction) -> None:
        """Show how members rated each other across this server's ended councils you can see."""
        assert interaction.guild is not None  # the group is guild_only
        board = await ratings_repo.server_scoreboard(
            self.bot.db, interaction.guild.id, readable=await self._readable(interaction)
        )
        embed = _ratings.server_embed(interaction.guild.name, board)
        if not board:
            await interaction.response.send_message(embed=embed, ephemeral=True)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)  # drawing may take a second or two
        picture = await _charts.server_picture(interaction.guild.id, board[: _charts.CHART_MEMBERS], self.bot.catalog)
        if picture is None:
            await interaction.followup.send(embed=embed, ephemeral=True)
            return
        embed.set_image(url=picture.url)
        await interaction.followup.send(embed=embed, file=picture.file(), ephemeral=True)

    async def message_details(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """The model, provider, tokens and cost behind a member's message."""
        council = (
            await repo.get_council_by_thread(self.bot.db, message.channel.id)
            if isinstance(message.channel, discord.Thread)
            else None
        )
        if council is not None and not await self._may_read(interaction, council):
            council = None  # to those who may not read it, it is no council at all
        line = await repo.find_message_by_discord_id(self.bot.db, council.id, message.id) if council else None
        called = (
            await reports.tool_details(self.bot.db, line) if line is not None and line.author_kind == "tool" else None
        )
        if called is not None and line is not None:
            embeds, files = _details.tool_details_message(called, line.id or 0)
            await interaction.response.send_message(embeds=embeds, files=files, ephemeral=True)
            return
        if council is None or line is None or line.author_kind != "ai":
            await refuse(interaction, "Message details are for messages council members posted in a council's thread.")
            return
        seat = next((s for s in await self.engine.seats(council.id) if s.name == line.author_name), None)
        details = reports.line_details(line, seat)
        embeds, files = _details.details_message(details, line.id or 0)
        await interaction.response.send_message(embeds=embeds, files=files, ephemeral=True)

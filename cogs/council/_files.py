"""What a human attached to a message in a council thread, downloaded for the engine (bot/council/attachments.py
decides what of it reaches the members). Only images and text files are downloaded, and only up to the size the
engine reads; Discord's links expire, so the engine keeps what it needs."""

from __future__ import annotations

import aiohttp
import discord

from bot.council.attachments import MAX_DOWNLOAD, SharedFile, kind_of


async def shared_files(message: discord.Message) -> tuple[SharedFile, ...]:
    files = []
    for attachment in message.attachments:
        shared = SharedFile(attachment.filename, attachment.content_type, attachment.size, None)
        if kind_of(shared) == "other":
            files.append(shared)
        elif attachment.size > MAX_DOWNLOAD:
            files.append(SharedFile(*_described(attachment), None, f"larger than {MAX_DOWNLOAD // 2**20} MB"))
        else:
            try:
                files.append(SharedFile(*_described(attachment), await attachment.read()))
            except (discord.HTTPException, aiohttp.ClientError, TimeoutError):
                files.append(SharedFile(*_described(attachment), None, "Discord did not let it be downloaded"))
    return tuple(files)


def _described(attachment: discord.Attachment) -> tuple[str, str | None, int]:
    return attachment.filename, attachment.content_type, attachment.size

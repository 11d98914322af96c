"""Files humans share in a council thread, made ready for the members.

Images (PNG, JPEG, GIF, WebP) are kept, within the providers' limits: at most MAX_EDGE pixels on the long edge and
MAX_IMAGE_BYTES (larger ones are scaled down and re-encoded, never refused for size alone); members whose catalog
entry says `vision = true` see them, the others read a line saying an image was shared. Text files (plain text,
Markdown, code, CSV, JSON, …) are read into the line as the human's words, up to MAX_TEXT_CHARS each. Anything else
is named in the line, not read. What is kept is stored with the line, so a council resumed after a restart still
has it (Discord's attachment links expire).

Plain Python (Pillow for images), no discord import: the cog downloads the files, this module decides what of them
reaches the members. `prepare` does CPU work: call it in a thread.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from PIL import Image, UnidentifiedImageError

from bot.providers.base import ImagePart
from storage.models import LineAttachment

IMAGE_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
MAX_DOWNLOAD = 25 * 1024 * 1024  # bytes: a larger file is named, not downloaded (Discord's upload limit for most)
MAX_EDGE = 1568  # pixels on the long edge: what Anthropic advises; larger images cost more and gain nothing
MAX_IMAGE_BYTES = 3_700_000  # after re-encoding: Anthropic's 5 MB limit is on the base64 form
MAX_PIXELS = 50_000_000  # an image larger than this is not decoded at all (a decompression bomb, or absurd)
MAX_IMAGES = 10  # per message (Discord's own attachment limit)
MAX_TEXT_CHARS = 20_000  # per text file read into the line; the rest is cut with a note
TEXT_SUFFIXES = frozenset(
    [
        ".txt",
        ".md",
        ".markdown",
        ".rst",
        ".csv",
        ".tsv",
        ".json",
        ".jsonl",
        ".yaml",
        ".yml",
        ".toml",
        ".ini",
        ".cfg",
        ".xml",
        ".html",
        ".css",
        ".log",
        ".sql",
        ".sh",
        ".py",
        ".js",
        ".ts",
        ".tsx",
        ".jsx",
        ".java",
        ".kt",
        ".c",
        ".h",
        ".cpp",
        ".hpp",
        ".cs",
        ".go",
        ".rs",
        ".rb",
        ".php",
        ".swift",
        ".lua",
        ".r",
        ".m",
        ".tex",
    ]
)


@dataclass(frozen=True, slots=True)
class SharedFile:
    """A file as the human shared it; `data` is None when it was not downloaded (`why_not` says why)."""

    filename: str
    content_type: str | None
    size: int
    data: bytes | None
    why_not: str = ""


@dataclass(frozen=True, slots=True)
class KeptImage:
    filename: str
    size: int  # bytes as shared
    image: ImagePart  # as the members are sent it


@dataclass(slots=True)
class Prepared:
    """What of a message's files reaches the members: text to add to its words, images, and a line per file that
    is only named (kept in the words too, so every member knows it was shared)."""

    text: str = ""
    images: list[KeptImage] = field(default_factory=list)
    named: list[tuple[str, int, str]] = field(default_factory=list)  # (filename, size, why it was not read)
    texts: list[tuple[str, int]] = field(default_factory=list)  # (filename, size) of the text files read


def rows(prepared: Prepared, shared_by: str) -> list[LineAttachment]:
    """The files as stored with their line: images with their bytes, the others by name and size."""
    stored = [
        LineAttachment(
            filename=kept.filename[:255],
            kind="image",
            media_type=kept.image.media_type,
            size=kept.size,
            width=kept.image.width,
            height=kept.image.height,
            data=kept.image.data,
            shared_by=shared_by[:100],
        )
        for kept in prepared.images
    ]
    stored += [
        LineAttachment(filename=name[:255], kind="text", size=size, shared_by=shared_by[:100])
        for name, size in prepared.texts
    ]
    stored += [
        LineAttachment(filename=name[:255], kind="other", size=size, shared_by=shared_by[:100])
        for name, size, _ in prepared.named
    ]
    return stored


def kept_image(row: LineAttachment) -> KeptImage:
    """A stored image as members are sent it."""
    return KeptImage(
        row.filename, row.size, ImagePart(row.media_type, row.data or b"", row.width or 0, row.height or 0)
    )


def kind_of(shared: SharedFile) -> str:
    """ "image", "text" or "other", from the type Discord gives and the name."""
    content_type = (shared.content_type or "").split(";")[0].strip().lower()
    if content_type in IMAGE_TYPES.values():
        return "image"
    if content_type.startswith("text/") or content_type in ("application/json", "application/xml"):
        return "text"
    return "text" if PurePosixPath(shared.filename.lower()).suffix in TEXT_SUFFIXES else "other"


def prepare(files: list[SharedFile]) -> Prepared:
    """Images within the limits, text files read, the rest named (see the module's docstring)."""
    prepared = Prepared()
    sections: list[str] = []
    for shared in files:
        kind = kind_of(shared)
        if kind == "other":
            prepared.named.append((shared.filename, shared.size, "only images and text files reach the members"))
        elif shared.data is None:
            prepared.named.append((shared.filename, shared.size, shared.why_not or "it could not be downloaded"))
        elif kind == "image":
            if len(prepared.images) >= MAX_IMAGES:
                prepared.named.append((shared.filename, shared.size, f"more than {MAX_IMAGES} images in one message"))
                continue
            image = fit_image(shared.data)
            if image is None:
                prepared.named.append((shared.filename, shared.size, "not an image the bot could read"))
            else:
                prepared.images.append(KeptImage(shared.filename, shared.size, image))
        elif kind == "text":
            text = _decoded(shared.data)
            if text is None:
                prepared.named.append((shared.filename, shared.size, "not UTF-8 text"))
                continue
            if len(text) > MAX_TEXT_CHARS:
                text = text[:MAX_TEXT_CHARS] + f"\n[… the rest of {shared.filename} is left out for length]"
            sections.append(f"[file {shared.filename}]\n{text}")
            prepared.texts.append((shared.filename, shared.size))
    notes = [f"[file {name} ({_size(size)}) not read: {why}]" for name, size, why in prepared.named]
    prepared.text = "\n\n".join([*sections, *notes])
    return prepared


def fit_image(data: bytes) -> ImagePart | None:
    """The image as members are sent it: the same bytes when they are within the limits, else scaled down to
    MAX_EDGE and re-encoded (PNG for images with transparency, JPEG otherwise) until under MAX_IMAGE_BYTES.
    None when the bytes are no image Pillow reads, or too large to decode safely."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            media_type = IMAGE_TYPES.get(opened.format or "")
            width, height = opened.size
            if media_type is None or width * height > MAX_PIXELS:
                return None
            if max(width, height) <= MAX_EDGE and len(data) <= MAX_IMAGE_BYTES:
                opened.verify()
                return ImagePart(media_type, data, width, height)
            opened.seek(0)  # a GIF: its first frame
            image = opened.convert("RGBA" if _has_alpha(opened) else "RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None
    scale = min(1.0, MAX_EDGE / max(width, height))
    while True:
        size = (max(1, math.floor(width * scale)), max(1, math.floor(height * scale)))
        resized = image.resize(size, Image.Resampling.LANCZOS) if size != image.size else image
        out = io.BytesIO()
        if resized.mode == "RGBA":
            resized.save(out, format="PNG", optimize=True)
            media_type = "image/png"
        else:
            resized.save(out, format="JPEG", quality=85)
            media_type = "image/jpeg"
        if out.tell() <= MAX_IMAGE_BYTES or min(size) <= 64:
            return ImagePart(media_type, out.getvalue(), *size)
        scale *= 0.75


def image_tokens(image: ImagePart, provider: str) -> int:
    """What an image costs in a member's context, by the provider's own estimate: Anthropic's width × height
    ÷ 750; OpenAI's 85 plus 170 per 512-pixel tile after fitting into 2048 and scaling the short side to 768."""
    if provider == "anthropic":
        return math.ceil(image.width * image.height / 750)
    width, height = image.width, image.height
    fit = min(1.0, 2048 / max(width, height))
    width, height = width * fit, height * fit
    short = min(width, height)
    if short > 768:
        width, height = width * 768 / short, height * 768 / short
    return 85 + 170 * math.ceil(width / 512) * math.ceil(height / 512)


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)


def _decoded(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    return text.replace("\r\n", "\n").replace("\x00", "")


def _size(size: int) -> str:
    return f"{size / 2**20:.1f} MB" if size >= 2**20 else f"{max(1, round(size / 1024))} KB"

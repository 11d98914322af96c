"""The language a council is held in: what its members are told to write in.

A council speaks the language its convener names, or else the one the humans in the thread last wrote in, or else
its topic's. The language of a text is told by py3langid (a naive Bayes model of character n-grams, deterministic
and offline); a text too short or too mixed to tell is not counted, so "ok thanks" or a member's name does not
switch a council's language.

Every prompt the engine writes carries `instruction(language)`. Fixed keywords the bot parses (FINAL RANKING,
STANCE, FLAG, JSON keys) stay as the prompt gives them; the parsers read them whatever language the reasons are in
(`for_parsing`).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

# A text tells its language when the model gives it this much probability, and twice the next language's (Russian,
# Ukrainian and Bulgarian share most of their letters).
CONFIDENCE = 0.4
MARGIN = 2.0
# Fewer letters than this tell nothing ("ok thanks", "はい"); a Chinese or Japanese character or a Hangul syllable
# counts as three, as it carries about a word.
MIN_LETTERS = 12
HUMAN_LINES_READ = 20  # the newest human lines looked at for the language people switched to

# ISO 639 code → English name, for every language the model knows (its "zxx", no language, is left out).
NAMES: dict[str, str] = {
    "af": "Afrikaans", "am": "Amharic", "an": "Aragonese", "ar": "Arabic", "ary": "Moroccan Arabic",
    "arz": "Egyptian Arabic", "as": "Assamese", "ace": "Acehnese", "az": "Azerbaijani", "ba": "Bashkir",
    "bcl": "Central Bikol", "be": "Belarusian", "bg": "Bulgarian", "bn": "Bengali", "br": "Breton",
    "bs": "Bosnian", "ca": "Catalan", "crh": "Crimean Tatar", "cs": "Czech", "cy": "Welsh", "da": "Danish",
    "de": "German", "dz": "Dzongkha", "el": "Greek", "en": "English", "eo": "Esperanto", "es": "Spanish",
    "et": "Estonian", "eu": "Basque", "ext": "Extremaduran", "fa": "Persian", "fi": "Finnish", "fo": "Faroese",
    "fr": "French", "fuv": "Nigerian Fulfulde", "fy": "Western Frisian", "ga": "Irish", "gcf": "Guadeloupean Creole",
    "gcr": "Guianese Creole", "gd": "Scottish Gaelic", "gl": "Galician", "gom": "Konkani", "grc": "Ancient Greek",
    "gu": "Gujarati", "gug": "Paraguayan Guarani", "guw": "Gun", "ha": "Hausa", "hbo": "Ancient Hebrew",
    "he": "Hebrew", "hi": "Hindi", "hr": "Croatian", "ht": "Haitian Creole", "hu": "Hungarian", "hy": "Armenian",
    "id": "Indonesian", "ig": "Igbo", "is": "Icelandic", "it": "Italian", "ja": "Japanese", "jv": "Javanese",
    "ka": "Georgian", "kab": "Kabyle", "kik": "Kikuyu", "kk": "Kazakh", "km": "Khmer", "kn": "Kannada",
    "ko": "Korean", "ku": "Kurdish", "ky": "Kyrgyz", "la": "Latin", "lb": "Luxembourgish", "lg": "Ganda",
    "lij": "Ligurian", "ln": "Lingala", "lo": "Lao", "lt": "Lithuanian", "ltg": "Latgalian", "lv": "Latvian",
    "mg": "Malagasy", "mk": "Macedonian", "ml": "Malayalam", "mn": "Mongolian", "mr": "Marathi", "ms": "Malay",
    "mt": "Maltese", "my": "Burmese", "ne": "Nepali", "nl": "Dutch", "nn": "Norwegian Nynorsk", "no": "Norwegian",
    "nso": "Northern Sotho", "oc": "Occitan", "om": "Oromo", "or": "Odia", "pa": "Punjabi",
    "pcm": "Nigerian Pidgin", "pl": "Polish", "ps": "Pashto", "pt": "Portuguese", "qu": "Quechua",
    "ro": "Romanian", "ru": "Russian", "rw": "Kinyarwanda", "sa": "Sanskrit", "sdh": "Southern Kurdish",
    "se": "Northern Sami", "si": "Sinhala", "sk": "Slovak", "sl": "Slovenian", "sn": "Shona", "so": "Somali",
    "sq": "Albanian", "sr": "Serbian", "st": "Southern Sotho", "sv": "Swedish", "sw": "Swahili", "ta": "Tamil",
    "te": "Telugu", "tg": "Tajik", "th": "Thai", "tk": "Turkmen", "tl": "Tagalog", "tr": "Turkish", "tt": "Tatar",
    "ug": "Uyghur", "uk": "Ukrainian", "ur": "Urdu", "uz": "Uzbek", "uzs": "Southern Uzbek", "vec": "Venetian",
    "vi": "Vietnamese", "vo": "Volapük", "wa": "Walloon", "wuu": "Wu Chinese", "xh": "Xhosa", "yo": "Yoruba",
    "yue": "Cantonese", "zh": "Chinese", "zu": "Zulu",
}  # fmt: skip

# What a convener may type for the most spoken languages besides their English name and code.
NATIVE: dict[str, str] = {
    "русский": "ru", "日本語": "ja", "中文": "zh", "汉语": "zh", "漢語": "zh", "한국어": "ko", "deutsch": "de",
    "français": "fr", "francais": "fr", "español": "es", "espanol": "es", "português": "pt", "portugues": "pt",
    "italiano": "it", "nederlands": "nl", "polski": "pl", "українська": "uk", "türkçe": "tr", "turkce": "tr",
    "العربية": "ar", "हिन्दी": "hi", "עברית": "he", "ελληνικά": "el", "čeština": "cs", "svenska": "sv",
    "norsk": "no", "dansk": "da", "suomi": "fi", "magyar": "hu", "română": "ro", "tiếng việt": "vi",
    "bahasa indonesia": "id", "فارسی": "fa", "ไทย": "th", "беларуская": "be", "български": "bg", "српски": "sr",
    "қазақ тілі": "kk",
}  # fmt: skip

_WORDLIKE = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_NOT_PROSE = re.compile(r"```.*?```|`[^`]*`|https?://\S+|<[@#&!:a-z]*\d+>|:[A-Za-z0-9_~]+:", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Language:
    code: str  # ISO 639

    @property
    def name(self) -> str:
        return NAMES.get(self.code, self.code)


class UnknownLanguage(ValueError):
    """A convener named a language the bot does not know."""


def named(text: str) -> Language:
    """The language a convener typed: an English name ("Russian"), a code ("ru") or a native name ("русский")."""
    wanted = " ".join(text.split()).casefold()
    if wanted in NAMES:
        return Language(wanted)
    for code, name in NAMES.items():
        if name.casefold() == wanted:
            return Language(code)
    if wanted in NATIVE:
        return Language(NATIVE[wanted])
    raise UnknownLanguage(text)


@functools.cache
def _identifier() -> object:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def load() -> None:
    """Load the model (about a second): call it off the event loop before the first `detect`."""
    _identifier()


@functools.lru_cache(maxsize=4096)  # a council's topic and lines are asked about on every turn
def detect(text: str) -> Language | None:
    """The language `text` is written in, or None when it is too short or too mixed to tell. Code, links,
    mentions and custom emoji are not counted."""
    prose = _NOT_PROSE.sub(" ", text)
    if sum((3 if _WORDLIKE.match(character) else 1) for character in prose if character.isalpha()) < MIN_LETTERS:
        return None
    (code, confidence), (_, runner_up) = _identifier().rank(prose)[:2]  # type: ignore[attr-defined]
    if confidence < CONFIDENCE or confidence < MARGIN * runner_up or code not in NAMES:
        return None
    return Language(code)


def of_council(chosen: str | None, topic: str, human_words: Iterable[str]) -> Language | None:
    """The council's language: the convener's choice, else the language of the newest human message that tells
    one (`human_words`, oldest first), else the topic's."""
    if chosen:
        try:
            return named(chosen)
        except UnknownLanguage:
            pass  # stored before the name table changed: tell by the words instead
    for words in reversed(list(human_words)):
        found = detect(words)
        if found is not None:
            return found
    return detect(topic)


class _Line(Protocol):
    author_kind: str
    content: str
    visibility: str


def of_transcript(chosen: str | None, topic: str, lines: Sequence[_Line]) -> Language | None:
    """`of_council` over a transcript: what humans wrote that everyone could read."""
    said = [line.content for line in lines if line.author_kind == "human" and line.visibility == "visible"]
    return of_council(chosen, topic, said[-HUMAN_LINES_READ:])


def instruction(language: Language | None) -> str:
    """The line every prompt carries."""
    keywords = (
        "Keep any fixed keyword, label, member name or JSON key you are asked to write exactly as given (in "
        "English); everything else in that language."
    )
    if language is None:
        return (
            "Write in the language the council is held in: the language of its topic, or the one the humans in the "
            f"thread have switched to, unless your role says otherwise. {keywords}"
        )
    return (
        f"The council is held in {language.name}: write in {language.name}, unless your role says otherwise. {keywords}"
    )


def for_parsing(text: str) -> str:
    """`text` as the bot's parsers read it: full-width forms folded (`ＦＩＮＡＬ　ＲＡＮＫＩＮＧ：` is
    `FINAL RANKING:`, `｜` is `|`, `４` is `4`). Only for reading structure: what is posted and stored is the
    text as written."""
    return unicodedata.normalize("NFKC", text)


# Cyrillic and Greek capitals that look like Latin ones, as Latin: a Russian reviewer may type `В` for the review's
# label B. Only a lone capital where a label is expected is read so (the Russian words "А", "В", "С" are common).
LOOKALIKES = {
    "А": "A", "В": "B", "С": "C", "Е": "E", "Н": "H", "К": "K", "М": "M", "О": "O", "Р": "P", "Т": "T",
    "Х": "X", "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N",
    "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
}  # fmt: skip


def latin_letter(letter: str) -> str:
    """A label letter as Latin (see LOOKALIKES), upper case."""
    return LOOKALIKES.get(letter, letter).upper()

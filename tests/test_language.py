"""The language a council is held in (bot/council/language.py), and the bot's parsers of structured answers
(rankings, ratings, stances, the chair's choice, self-flags, the judge's verdict) on answers whose reasons are
in Russian and Japanese, full-width forms and look-alike letters included."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot.catalog import MemberSpec
from bot.council import conductor, debate, language, review
from bot.council.language import Language, UnknownLanguage, detect, named, of_council, of_transcript
from bot.council.ratings import parse_ratings
from bot.council.seats import Seat
from bot.governance.judge import parse_verdict
from bot.governance.selfflag import parse_self_flag


def seat_named(name: str) -> Seat:
    return Seat(MemberSpec(name, "openai", f"{name.lower()}-test", "http://127.0.0.1:1", None, "A member."), None)


RUSSIAN_TOPIC = "Должен ли наш город заменить парковки парками?"
JAPANESE_TOPIC = "私たちの街は駐車場を公園に置き換えるべきでしょうか？"
ENGLISH_TOPIC = "Should our city replace its parking lots with parks?"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (RUSSIAN_TOPIC, "ru"),
        (JAPANESE_TOPIC, "ja"),
        (ENGLISH_TOPIC, "en"),
        ("Sollten Städte Parkplätze durch Parks ersetzen?", "de"),
        ("Чи повинні міста замінити парковки парками?", "uk"),
    ],
)
def test_the_language_of_a_topic_is_told(text: str, code: str) -> None:
    assert detect(text) == Language(code)


@pytest.mark.parametrize(
    "text", ["ok", "👍", "<@123456789012345678>", "https://example.com/a/b", "```py\nx = 1\n```", ""]
)
def test_text_too_short_to_tell_tells_nothing(text: str) -> None:
    assert detect(text) is None


def test_code_links_and_mentions_do_not_count() -> None:
    text = (
        "Смотрите https://example.com/parks-and-recreation-report и ```python\nprint('hello world')\n``` — это важно."
    )
    assert detect(text) == Language("ru")


@pytest.mark.parametrize(
    ("typed", "code"),
    [("Russian", "ru"), ("ru", "ru"), ("русский", "ru"), ("  JAPANESE ", "ja"), ("日本語", "ja"), ("Deutsch", "de")],
)
def test_a_convener_names_a_language_by_name_code_or_its_own_name(typed: str, code: str) -> None:
    assert named(typed) == Language(code)


@pytest.mark.parametrize("typed", ["Klingon", "zz", "", "english please"])
def test_an_unknown_language_is_refused(typed: str) -> None:
    with pytest.raises(UnknownLanguage):
        named(typed)


def test_the_conveners_choice_wins_then_the_newest_human_words_then_the_topic() -> None:
    assert of_council("ja", RUSSIAN_TOPIC, ["Let us talk about buses instead, please."]) == Language("ja")
    assert of_council(None, RUSSIAN_TOPIC, []) == Language("ru")
    assert of_council(None, RUSSIAN_TOPIC, ["Let us talk about buses instead, please."]) == Language("en")
    # Words that tell nothing ("ok", an emoji) do not switch the council back or forth.
    assert of_council(None, RUSSIAN_TOPIC, ["Let us talk about buses instead, please.", "ok", "👍"]) == Language("en")
    assert of_council(None, "???", ["!!"]) is None


def test_only_what_humans_wrote_for_everyone_switches_the_language() -> None:
    def line(kind: str, content: str, visibility: str = "visible") -> SimpleNamespace:
        return SimpleNamespace(author_kind=kind, content=content, visibility=visibility)

    lines = [
        line("ai", "Let me answer in English, which nobody asked for, at some length."),
        line("human", "Let us talk about buses instead, please.", visibility="held"),
        line("system", "The council is paused by its convener for a short while."),
    ]
    assert of_transcript(None, RUSSIAN_TOPIC, lines) == Language("ru")
    assert of_transcript(None, RUSSIAN_TOPIC, [*lines, line("human", "Let us talk about buses instead.")]) == Language(
        "en"
    )


def test_the_instruction_names_the_language_and_keeps_the_keywords() -> None:
    told = language.instruction(Language("ru"))
    assert "held in Russian" in told and "write in Russian" in told and "exactly as given" in told
    assert "language of its topic" in language.instruction(None)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_telling_a_language_never_fails(text: str) -> None:
    found = detect(text)
    assert found is None or found.code in language.NAMES


# -- the bot's parsers, whatever language the reasons are in ------------------------------------------------------


def test_a_russian_ranking_with_cyrillic_labels_is_read() -> None:
    reply = (
        "Ответ В самый точный, ответ А хорош, С слабее.\n"
        "FINAL RANKING: Ответ В > Ответ А > Ответ С\n"
        "В целом все ответы полезны."
    )
    assert review.parse_ranking(reply, ["A", "B", "C"]) == ["B", "A", "C"]


def test_a_japanese_ranking_in_full_width_forms_is_read() -> None:
    reply = "回答Ｃが最も優れています。\nＦＩＮＡＬ　ＲＡＮＫＩＮＧ：回答Ｃ ＞ 回答Ａ ＞ 回答Ｂ"
    assert review.parse_ranking(reply, ["A", "B", "C"]) == ["C", "A", "B"]


def test_russian_words_that_look_like_labels_are_not_taken_for_labels() -> None:
    # "В" (in) and "С" (with) begin Russian sentences; only the ranking line's labels count.
    reply = "FINAL RANKING: Response B > Response A > Response C\nВ целом, С учётом всего, А также…"
    assert review.parse_ranking(reply, ["A", "B", "C"]) == ["B", "A", "C"]
    assert review.parse_ranking("FINAL RANKING: Всё же, Считаю, Ответы", ["A", "B", "C"]) is None


def test_ratings_with_russian_and_japanese_reasons_are_read() -> None:
    reply = (
        "DeepSeek | 4 | 5 | 3 | Ясно и по делу, но слишком уверенно.\n"
        "Ｌｌａｍａ ｜ ４ ｜ ３ ｜ ５ ｜ 率直で、自分の限界を認めている。"
    )
    ratings = parse_ratings(reply, ["DeepSeek", "Llama"])
    assert (ratings["DeepSeek"].clarity, ratings["DeepSeek"].insight, ratings["DeepSeek"].self_awareness) == (4, 5, 3)
    assert ratings["DeepSeek"].reason == "Ясно и по делу, но слишком уверенно."
    assert (ratings["Llama"].clarity, ratings["Llama"].self_awareness) == (4, 5)
    assert ratings["Llama"].reason.startswith("率直で")


def test_a_stance_after_russian_or_japanese_words_is_read() -> None:
    russian = debate.mark_stance("Я по-прежнему считаю, что парки лучше.\nSTANCE: holds")
    assert debate.stance_of(russian) == debate.HOLDS and russian.startswith("Я по-прежнему")
    japanese = debate.mark_stance("考えを改めました。\nＳＴＡＮＣＥ：ｒｅｖｉｓｅｄ")
    assert debate.stance_of(japanese) == debate.REVISED and japanese.startswith("考えを改めました。")


def test_the_chairs_choice_with_a_japanese_reason_in_full_width_braces_is_read() -> None:
    seats = [seat_named("Claude"), seat_named("Llama")]
    reply = "｛＂next＂：＂Llama＂，＂why＂：＂現実的な視点が必要です＂｝"
    chosen, why, problem = conductor.parse(reply, seats, None)
    assert chosen is not None and chosen.name == "Llama" and why == "現実的な視点が必要です" and not problem
    chosen, why, _ = conductor.parse(json.dumps({"next": "Claude", "why": "Нужен взгляд философа"}), seats, None)
    assert chosen is not None and chosen.name == "Claude" and why == "Нужен взгляд философа"


def test_a_self_flag_in_full_width_forms_is_read_and_removed() -> None:
    text, concern = parse_self_flag("これは重要な点です。\nＦＬＡＧ：privacy：個人の住所が含まれています")
    assert text == "これは重要な点です。"
    assert concern is not None and concern.category == "privacy" and concern.reason == "個人の住所が含まれています"


def test_the_judges_verdict_with_a_russian_reason_is_read() -> None:
    verdict = parse_verdict('{"verdict": "concern", "category": "privacy", "reason": "Содержит адрес частного лица."}')
    assert verdict is not None and getattr(verdict, "reason", "") == "Содержит адрес частного лица."


@settings(max_examples=300, deadline=None)
@given(st.text(), st.sampled_from(["holds", "revised"]))
@example("Ｘ\n", "holds")
def test_a_stance_line_is_found_after_any_words(words: str, stance: str) -> None:
    marked = debate.mark_stance(f"{words}\nＳＴＡＮＣＥ：{stance}")
    assert debate.stance_of(marked) == (debate.HOLDS if stance == "holds" else debate.REVISED)


@settings(max_examples=300, deadline=None)
@given(st.text(), st.permutations(["A", "B", "C"]))
def test_a_final_ranking_line_is_read_after_any_assessment(assessment: str, order: list[str]) -> None:
    reply = f"{assessment}\nFINAL RANKING: " + " > ".join(f"Response {label}" for label in order)
    assert review.parse_ranking(reply, ["A", "B", "C"]) == order

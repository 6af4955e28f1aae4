"""DiaryReport values: the sentence's voice label, neutral when a neutral voice is likelier than any emotion."""

from __future__ import annotations

from fusion.report import NEUTRAL_VOICE, SentenceReport, ValenceArousal


def sentence(voice_probs: dict[str, float], neutral: float) -> SentenceReport:
    point = ValenceArousal(valence=0.0, arousal=0.0)
    top = max(voice_probs, key=voice_probs.get)
    return SentenceReport(index=0, text="오늘", start=0.0, end=1.0, timing="stt", text_probs={"기쁨": 1.0},
                          text_top="기쁨", voice_probs=voice_probs, voice_top=top, voice_neutral_prob=neutral,
                          words_va=point, voice_va=point, prosody=None)


def test_voice_label_is_neutral_only_when_it_outweighs_the_top_emotion():
    assert sentence({"SAD": 0.8, "HAPPY": 0.2}, 0.3).voice_label() == "SAD"          # 0.3 < 0.7 * 0.8
    assert sentence({"SAD": 0.8, "HAPPY": 0.2}, 0.5).voice_label() == NEUTRAL_VOICE  # 0.5 > 0.5 * 0.8
    assert sentence({"SAD": 0.5, "HAPPY": 0.5}, 0.0).voice_label() == "SAD"

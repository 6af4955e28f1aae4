"""The kinds of alert a report can carry, their severities and how each is told: named here once.

A leaf module (it imports nothing of fusion), so the rules (``fusion.combine``), the report schema
(``fusion.report``), the configuration's checks (``fusion.config``), the drift alert (``fusion.history``),
the evaluation and every rendering read one table and import one way.
"""

from __future__ import annotations

SEVERITIES = ("low", "medium", "high")

# The words-vs-voice mismatches of one diary (``fusion.combine.ALERT_RULES`` scores each).
FLAGSHIP = "positive_words_depressed_tone"
UPBEAT = "negative_words_upbeat_tone"
AGITATED = "calm_words_agitated_tone"
# kind → the sentence that tells it, in the order the kinds are listed everywhere
MISMATCH_WORDS: dict[str, str] = {
    FLAGSHIP: "The words sound positive, but the voice sounds low and sad.",
    UPBEAT: "The words are negative, but the voice sounds upbeat.",
    AGITATED: "The words are calm, but the voice sounds agitated.",
}

# The one alert about a person's recent diaries against their own history (``fusion.history``), not one diary.
DRIFT_KIND = "voice_lower_than_usual"
DRIFT_WORDS = "In the recent diaries the voice sounds lower than this person's usual."
# What that alert weighs → (its name, the unit its numbers are in): the voice's valence, its pitch and its level.
SIGNAL_WORDS = {
    "voice_valence": ("voice valence", "on the -1 … +1 scale"),
    "pitch_semitones": ("pitch", "semitones against the usual median pitch"),
    "energy_db": ("energy", "dB"),
}
TREND_SIGNALS = tuple(SIGNAL_WORDS)

# What every rendering says of the alerts: what they are and what they are not.
ALERTS_ARE = "An alert marks a mismatch between what was said and how it sounded; it is not a diagnosis."


def told(kind: str) -> str:
    """The sentence that tells an alert kind (an unknown one, stored by another version: its name in words)."""
    if kind == DRIFT_KIND:
        return DRIFT_WORDS
    return MISMATCH_WORDS.get(kind, kind.replace("_", " "))

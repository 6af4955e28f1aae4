"""Split what was said into sentences and give each one a start and end time.

Whisper output is often unpunctuated, so the default splitter is kiwipiepy's
sentence segmenter, which finds Korean sentence ends from morphology; the
original system's ``re.split(r'[.?!\\n]')`` stays available as method "regex".
Times come from Whisper's word timestamps (source "stt"), snapped to the edges
of the voiced spans so that no sentence starts or ends inside a pause, or, for a
transcript the user typed, from spreading the sentences over the voiced parts of
the recording in proportion to their length (source "transcript").
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from functools import lru_cache

from fusion.config import SentenceConfig
from fusion.stt import Transcript


@dataclass(frozen=True)
class Sentence:
    text: str
    start: float
    end: float
    source: str


def split_text(text: str, cfg: SentenceConfig) -> list[str]:
    """Sentences of ``text``, stripped, none empty, fragments under ``cfg.min_chars`` merged into a neighbour."""
    return [text[a:b] for a, b in split_spans(text, cfg)]


def split_spans(text: str, cfg: SentenceConfig) -> list[tuple[int, int]]:
    """Character spans ``[start, end)`` of the sentences of ``text`` (what ``split_text`` returns)."""
    if cfg.method in ("kiwi", "kiwi-endings"):
        spans = [(s.start, s.end) for s in kiwi().split_into_sents(text)]
        if cfg.method == "kiwi-endings":
            spans = [piece for a, b in spans for piece in _split_at_endings(text, a, b, cfg.end_score)]
    else:
        spans, pos = [], 0
        for m in re.finditer(cfg.regex, text):
            spans.append((pos, m.start()))
            pos = m.end()
        spans.append((pos, len(text)))
    return _merge_short([s for s in (_strip(text, a, b) for a, b in spans) if s], text, cfg.min_chars)


def sentences_from_transcript(
    transcript: Transcript, cfg: SentenceConfig, speech: list[tuple[float, float]] | None = None
) -> list[Sentence]:
    """Sentences of an STT transcript, timed by aligning their characters to Whisper's words.

    The words' texts, concatenated, are the transcript text; each character
    gets the time of the word it belongs to (interpolated inside the word), so
    a sentence boundary that falls inside a word splits that word's time. A
    segment without word timestamps counts as one word spanning the segment.
    With ``speech`` (``fusion.levels.voiced_spans``) the times are then snapped
    to its edges (``snap_to_speech``).
    """
    text, units = _timed_units(transcript)
    if not text.strip():
        return []
    starts = [u[0] for u in units]
    sentences = []
    for a, b in split_spans(text, cfg):
        begin, finish = _char_time(units, starts, a, side="start"), _char_time(units, starts, b - 1, side="end")
        sentences.append(Sentence(text[a:b], begin, max(begin, finish), "stt"))
    return snap_to_speech(sentences, speech) if speech else sentences


def snap_to_speech(sentences: list[Sentence], speech: list[tuple[float, float]]) -> list[Sentence]:
    """Sentences whose start or end falls in a pause, moved inward to the nearest edge of speech.

    Whisper's int8 word timestamps drift by up to half a second from one CPU to
    another; the voiced spans' edges come from the signal and do not. A start in a
    pause moves to the start of the next span, an end to the end of the previous one,
    when that stays inside the sentence; times only move inward, so order is kept.
    """
    starts = [a for a, _ in speech]
    out = []
    for s in sentences:
        begin, finish = s.start, s.end
        k = bisect.bisect_right(starts, begin) - 1
        if (k < 0 or begin >= speech[k][1]) and k + 1 < len(speech) and speech[k + 1][0] < finish:
            begin = speech[k + 1][0]
        k = bisect.bisect_left(starts, finish) - 1
        if k >= 0 and finish > speech[k][1] > begin:
            finish = speech[k][1]
        out.append(Sentence(s.text, begin, finish, s.source))
    return out


def sentences_from_text(
    text: str, voiced_spans: list[tuple[float, float]], duration: float, cfg: SentenceConfig
) -> list[Sentence]:
    """Sentences of a given transcript, spread over the voiced speech in proportion to their length.

    The voiced spans are laid end to end as one speech timeline; each sentence
    takes a share of it equal to its share of the characters (spaces not
    counted), and the share is mapped back to clock time. Without voiced spans
    the whole recording is used.
    """
    texts = split_text(text, cfg)
    if not texts:
        return []
    spans = [(a, b) for a, b in voiced_spans if b > a] or [(0.0, duration)]
    offsets = [0.0]
    for a, b in spans:
        offsets.append(offsets[-1] + b - a)
    weights = [max(len(re.sub(r"\s+", "", t)), 1) for t in texts]
    total, done, out = sum(weights), 0, []
    for t, w in zip(texts, weights):
        lo, hi = offsets[-1] * done / total, offsets[-1] * (done + w) / total
        out.append(Sentence(t, _clock(spans, offsets, lo, side="start"), _clock(spans, offsets, hi, side="end"),
                            "transcript"))
        done += w
    return out


# Endings after which an unpunctuated sentence may end: kiwi reads the 반말 endings (했어, 거야, 했지) as
# connectives without a full stop to tell it otherwise; "다" as a connective is "-다(가)", rare in a diary and
# what kiwi makes of "나눴다 내일도" with no full stop between.
_ALWAYS_ENDS = {("다", "EC")}
_MAYBE_ENDS = {"어", "아", "야", "지", "네", "거든"}


def _split_at_endings(text: str, a: int, b: int, end_score: float) -> list[tuple[int, int]]:
    """``text[a:b]`` cut after each word that ends a sentence, for speech-to-text written without punctuation.

    A word ends a sentence when its last morpheme is a final ending (EF) or the connective 다; a word ending in
    a 반말 ending (어 아 야 지 네 거든) does when kiwi's language model scores its two neighbouring words with a full
    stop between at least ``end_score`` above them without one.
    """
    cuts, tokens = [], kiwi().tokenize(text[a:b])
    for i, tok in enumerate(tokens):
        end = a + tok.start + tok.len
        nxt = a + tokens[i + 1].start if i + 1 < len(tokens) else b
        if end >= b or not text[end].isspace() or nxt <= end:
            continue
        if tok.tag == "EF" or (tok.form, tok.tag) in _ALWAYS_ENDS or (
                tok.tag == "EC" and tok.form in _MAYBE_ENDS and _end_gain(text, end, nxt, a, b) >= end_score):
            cuts.append(nxt)
    edges = [a, *cuts, b]
    return list(zip(edges[:-1], edges[1:]))


def _end_gain(text: str, end: int, nxt: int, a: int, b: int) -> float:
    """How much likelier kiwi finds the two words before ``end`` and after ``nxt`` with a full stop between."""
    left = text[a:end].split()[-2:]
    right = text[nxt:b].split()[:2]
    with_stop, without = (kiwi().analyze(" ".join(left) + sep + " ".join(right), top_n=1)[0][1] for sep in (". ", " "))
    return with_stop - without


# kiwipiepy's multi-word dictionary (WikiData proper nouns such as "급성 백혈병" read as one noun) holds 180 MB of
# the analyser's 480; without it 133 of 57,736 dialogue and diary texts get other morphemes, none of the diaries'
# sentence splits change. The text model's n-grams are read with these options, so they are part of it.
KIWI_OPTIONS = {"load_multi_dict": False}


@lru_cache(maxsize=1)
def kiwi():
    """The process's one Korean analyser (building it takes seconds); the text branch shares it."""
    from kiwipiepy import Kiwi

    return Kiwi(**KIWI_OPTIONS)


def _strip(text: str, a: int, b: int) -> tuple[int, int] | None:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return (a, b) if b > a else None


def _merge_short(spans: list[tuple[int, int]], text: str, min_chars: int) -> list[tuple[int, int]]:
    """Join spans with fewer than ``min_chars`` non-space characters to the previous span (the next, if first)."""
    def size(span: tuple[int, int]) -> int:
        return len(re.sub(r"\s+", "", text[span[0] : span[1]]))

    out: list[tuple[int, int]] = []
    for span in spans:
        if out and (size(span) < min_chars or size(out[-1]) < min_chars):
            out[-1] = (out[-1][0], span[1])
        else:
            out.append(span)
    return out


def _timed_units(transcript: Transcript) -> tuple[str, list[tuple[int, int, float, float]]]:
    """The transcript text rebuilt from its words, and (char start, char end, t start, t end) per word.

    Times are made non-decreasing, so later characters never get earlier times.
    """
    parts, units, pos, last = [], [], 0, 0.0
    for seg in transcript.segments:
        pieces = [(w.text, w.start, w.end) for w in seg.words] or [(seg.text, seg.start, seg.end)]
        for piece, start, end in pieces:
            start = max(start, last)
            end = max(end, start)
            core = _strip(piece, 0, len(piece))
            if core:
                units.append((pos + core[0], pos + core[1], start, end))
            parts.append(piece)
            pos += len(piece)
            last = end
    return "".join(parts), units


def _char_time(units, starts, c: int, side: str) -> float:
    """Clock time of character ``c``: its start (``side="start"``) or its end, interpolated inside its word."""
    i = bisect.bisect_right(starts, c) - 1
    if i < 0:
        return units[0][2]
    cs, ce, ts, te = units[i]
    if c >= ce:  # whitespace after word i
        return units[i + 1][2] if side == "start" and i + 1 < len(units) else te
    frac = (c - cs + (1 if side == "end" else 0)) / (ce - cs)
    return ts + frac * (te - ts)


def _clock(spans, offsets, t: float, side: str) -> float:
    """Clock time of position ``t`` on the concatenated speech timeline; span ends belong to "end" positions."""
    find = bisect.bisect_left if side == "end" else bisect.bisect_right
    k = min(max(find(offsets, t) - 1, 0), len(spans) - 1)
    return spans[k][0] + (t - offsets[k])

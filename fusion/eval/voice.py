"""``fusion eval audio`` and ``fusion eval leakage``: the voice model, judged on the voice and not the words.

``eval_audio`` scores a path,label[,speaker,gender,subset] CSV one clip at a time with the
product's voice model and prints, besides the figures over all rows, the same figures for the
lexically balanced rows and for the scripted ones apart (``subset`` = emotional-to-emotional:
emotion-congruent scripts, so a model that hears the words can score there). ``eval_leakage``
measures how much the words alone move the voice model: the same synthetic voice (espeak-ng,
fixed speed and pitch) says happy and sad sentences, and the leakage is the mean shift of
P(SAD) between the two sets. A voice model should not care: 0 is the ideal.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from fusion.config import Config, default_config
from fusion.errors import InputError, ModelError
from fusion.eval.baselines import check_mode, clip_stats, leave_one_out
from fusion.eval.metrics import roc_auc, uar
from fusion.eval.text import classification_result, label_lookup, read_rows, resolve_path, split_known
from fusion.progress import track

SCRIPTED = "emotional-to-emotional"
ESPEAK_SETTINGS = ("-s", "150", "-p", "50", "-a", "120")  # words per minute, pitch, amplitude: the same for both sets


def personal_baselines(rows: list[dict], stats: dict, cfg: Config) -> dict:
    """speaker → ``NeutralBaseline`` from that speaker's ``[eval] neutral_label`` rows, as ``fusion baseline``
    builds one from calm clips (speakers with fewer than 2 get none)."""
    from fusion.voice.prosody import baseline_from_stats

    by_speaker = defaultdict(list)
    for i, r in enumerate(rows):
        if r["label"].strip().lower() == cfg.eval.neutral_label.lower():
            by_speaker[r["speaker"].strip()].append(i)
    return {speaker: baseline_from_stats([stats[i] for i in idx], f"personal:{speaker}")
            for speaker, idx in sorted(by_speaker.items()) if len(idx) >= 2}


def reference_baseline(row: dict, pitch_hz: float, cfg: Config):
    """The row's gender's reference baseline (male/female), else the configured one nearest its pitch."""
    from fusion.voice.prosody import resolve_baseline

    gender = (row.get("gender") or "").strip().lower()
    if gender in cfg.audio.baselines:
        return resolve_baseline(gender, cfg)
    return resolve_baseline("auto", cfg, pitch_hz=pitch_hz)


def voice_of(model, path: Path, baseline_for, cfg: Config) -> tuple[np.ndarray, float]:
    """(emotion distribution, P(neutral voice)) of one clip, as the product scores a whole diary."""
    from fusion.audio import load_audio
    from fusion.levels import voiced_spans

    audio = load_audio(path)
    scores = model.predict(audio.samples, [], voiced_spans(audio, cfg.audio_input), baseline_for(audio.samples))
    return scores.diary, scores.diary_neutral


def _group_figures(y_true, y_pred, is_sad, p_sad, depressed=None) -> dict:
    out = {"n": len(y_true), "uar": uar(y_true, y_pred) if y_true else None, "sad_auc": roc_auc(is_sad, p_sad)}
    if depressed is not None:
        out["depressed_auc"] = roc_auc(is_sad, depressed)
    return out


def _mode(personal_baseline: bool, baseline_mode: str | None) -> str:
    if personal_baseline and baseline_mode not in (None, "personal"):
        raise ValueError(f"--personal-baseline is --baseline-mode personal; it cannot go with {baseline_mode!r}")
    return check_mode(baseline_mode or ("personal" if personal_baseline else "reference"))


def eval_audio(csv_path: str | Path, model: str | None = None, split: str | None = None,
               personal_baseline: bool = False, config: Config | None = None, progress: bool = True,
               baseline_mode: str | None = None) -> dict:
    """The voice model on a path,label[,speaker,gender,subset] CSV, one prediction per clip.

    ``baseline_mode`` (``fusion.eval.baselines``): ``reference`` (default) hears each clip against
    its gender's reference baseline; ``personal`` (``personal_baseline``) builds each speaker's
    baseline from their ``[eval] neutral_label`` rows, which are then not scored (``baseline_rows``);
    ``auto`` builds each clip's from its speaker's other rows, whatever their label (leave one out).
    A clip without a personal or auto baseline is heard against the reference (``reference_rows``).
    ``sad_auc`` ranks P(SAD) (the neutral share taken out) of the SAD rows against every other
    scored row, neutral and calm included, since low mood must be told from calm;
    ``depressed_auc`` ranks the flagship alert's depressed-voice score (P(SAD) plus
    ``[alerts] depressed_pitch_weight`` per semitone of pitch below the baseline) the same way:
    the baseline moves it through the pitch term whatever the model. ``neutral_auc`` ranks
    P(neutral voice) of the rows whose label the model lacks (neutral, calm) against the
    emotional ones. ``lexical`` and ``per_speaker`` repeat the figures for the lexically balanced
    and scripted rows apart, and for each speaker.
    """
    from fusion.combine import depressed_score, sad_share
    from fusion.voice.model import load_audio_model_from

    cfg = config or default_config()
    mode = _mode(personal_baseline, baseline_mode)
    required = ("path", "label") if mode == "reference" else ("path", "label", "speaker")
    rows = read_rows(csv_path, required, split)
    net = load_audio_model_from(model or cfg.audio.model, cfg)
    paths = [resolve_path(csv_path, r["path"]) for r in rows]
    stats = clip_stats(paths, cfg, progress)
    speakers = [r.get("speaker", "").strip() for r in rows]
    personal = personal_baselines(rows, stats, cfg) if mode == "personal" else {}
    neutral = cfg.eval.neutral_label.lower()
    used = {i for i, r in enumerate(rows) if speakers[i] in personal and r["label"].strip().lower() == neutral}
    if mode == "auto":
        own = leave_one_out(stats, speakers, cfg)
    else:
        own = [personal.get(s) if i not in used else None for i, s in enumerate(speakers)]
    base = [own[i] or reference_baseline(rows[i], stats[i].prosody.pitch_hz, cfg) for i in range(len(rows))]
    lookup = label_lookup(net.labels, cfg.eval.audio_labels)
    scored = [i for i in range(len(rows)) if i not in used]
    keep, y_true, skipped = split_known((rows[i]["label"] for i in scored), lookup)
    keep = [scored[k] for k in keep]
    voice = {}
    for i in track(scored, "audio", progress):
        voice[i] = voice_of(net, paths[i], lambda _samples, b=base[i]: b, cfg)
    y_pred = [net.labels[int(np.argmax(voice[i][0]))] for i in keep]
    result = classification_result("audio", csv_path, split, net.model_id, y_true, y_pred, net.labels, skipped)
    is_sad = [lookup.get(rows[i]["label"].strip().lower()) == "SAD" for i in scored]
    p_sad = sad_share(np.array([voice[i][0] for i in scored]), np.array([voice[i][1] for i in scored]), net.labels)
    pitch = [stats[i].prosody.for_report(base[i]).pitch_semitones for i in scored]
    depressed = depressed_score(p_sad, np.array(pitch, dtype=np.float64), cfg.alerts.depressed_pitch_weight)
    emotional = [rows[i]["label"].strip().lower() in lookup for i in scored]
    result.update({
        "baseline": mode, "baseline_rows": len(used),
        "personal_speakers": sorted({speakers[i] for i in scored if own[i] is not None}),
        "reference_rows": sum(own[i] is None for i in scored), "architecture": net.architecture,
        "sad_auc": roc_auc(is_sad, p_sad), "sad_auc_rows": {"sad": sum(is_sad), "rest": len(is_sad) - sum(is_sad)},
        "depressed_auc": roc_auc(is_sad, depressed),
        "neutral_auc": roc_auc([not e for e in emotional], [voice[i][1] for i in scored]),
    })
    truth = dict(zip(keep, y_true))

    def figures(part: list[int]) -> dict:
        labelled = [scored[k] for k in part if scored[k] in truth]
        out = _group_figures([truth[i] for i in labelled], [net.labels[int(np.argmax(voice[i][0]))] for i in labelled],
                             [is_sad[k] for k in part], [p_sad[k] for k in part], [depressed[k] for k in part])
        out["neutral_auc"] = roc_auc([not emotional[k] for k in part], [voice[scored[k]][1] for k in part])
        return out

    result["lexical"] = {}
    for name, scripted in (("lexically balanced", False), ("scripted", True)):
        part = [k for k, i in enumerate(scored) if (rows[i].get("subset", "").strip() == SCRIPTED) == scripted]
        if part:
            result["lexical"][name] = figures(part)
    result["per_speaker"] = {s: figures([k for k, i in enumerate(scored) if speakers[i] == s])
                             for s in sorted({speakers[i] for i in scored}) if s}
    return result


def read_sentences(csv_path: Path) -> dict[str, list[str]]:
    """kind → sentences of a text,kind CSV (kinds ``happy`` and ``sad``)."""
    rows = read_rows(csv_path, ("text", "kind"))
    out = {kind: [r["text"].strip() for r in rows if r["kind"].strip() == kind] for kind in ("happy", "sad")}
    if not out["happy"] or not out["sad"]:
        raise InputError(csv_path, "needs rows of kind 'happy' and of kind 'sad'")
    return out


def speak(text: str, dest: Path, voice: str = "ko") -> Path:
    """``text`` spoken by espeak-ng into a WAV at ``dest`` (same settings for every sentence)."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise ModelError("espeak-ng is not installed (apt-get install espeak-ng): the leakage check needs it")
    subprocess.run([binary, "-v", voice, *ESPEAK_SETTINGS, "-w", str(dest), text], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return dest


def eval_leakage(sentences_csv: str | Path, model: str | None = None, config: Config | None = None,
                 progress: bool = True) -> dict:
    """Mean P(SAD) of sad sentences minus happy ones, both said by one synthetic voice with fixed prosody."""
    from fusion.combine import sad_share
    from fusion.voice.model import load_audio_model_from
    from fusion.voice.prosody import resolve_baseline

    cfg = config or default_config()
    net = load_audio_model_from(model or cfg.audio.model, cfg)
    sets = read_sentences(Path(sentences_csv))
    p_sad: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="fusion-leakage-") as tmp:
        for kind, texts in sets.items():
            p_sad[kind] = []
            for k, text in enumerate(track(texts, f"leakage: {kind}", progress)):
                wav = speak(text, Path(tmp) / f"{kind}{k}.wav")
                probs, neutral = voice_of(net, wav, lambda _: resolve_baseline("male", cfg), cfg)
                p_sad[kind].append(float(sad_share(probs, neutral, net.labels)))
    shift = float(np.mean(p_sad["sad"]) - np.mean(p_sad["happy"]))
    return {"task": "leakage", "data": str(sentences_csv), "model": net.model_id, "voice": "espeak-ng ko",
            "n": {k: len(v) for k, v in p_sad.items()}, "p_sad": {k: float(np.mean(v)) for k, v in p_sad.items()},
            "leakage": shift, "per_sentence": p_sad}


def leakage_summary(result: dict) -> str:
    return "\n".join([
        f"leakage · {result['data']}", f"model     {result['model']}  (voice: {result['voice']}, fixed prosody)",
        f"P(SAD)    sad words {result['p_sad']['sad']:.4f} (n {result['n']['sad']})  "
        f"happy words {result['p_sad']['happy']:.4f} (n {result['n']['happy']})",
        f"leakage   {result['leakage']:+.4f}  "
        "(mean P(SAD) of sad words minus happy words; 0 = the words do not matter)"])


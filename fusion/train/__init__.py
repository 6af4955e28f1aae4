"""``fusion train``: the trainers of the shipped models and of the alert rule.

Modules: ``text`` (the embedded n-gram text model), ``text_hf`` (a transformers text model),
``audio`` (the MFCC-delta CNN-BiLSTM voice model and the baselines), ``voice`` (the Whisper-encoder
voice head), ``alerts`` (the depressed-voice rule of ``[alerts]``).
"""

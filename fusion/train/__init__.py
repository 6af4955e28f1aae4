"""``fusion train``: the trainers of the shipped models and of the alert rule (commands in ``cli``).

``text`` (the embedded n-gram text model; its data in ``text_data``, its fitting in ``text_fit``),
``text_hf`` (a transformers text model), ``audio`` (the MFCC-delta CNN-BiLSTM voice model; clips in
``audio_clips``, recipe and fitting in ``audio_fit``, the Korean speaker report in ``audio_report``),
``voice`` (the Whisper-encoder voice head), ``alerts`` (the depressed-voice rule of ``[alerts]``).
"""

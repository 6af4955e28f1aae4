"""The voice half: a recording's samples in, the voice model's emotions and prosody out.

``model``: the protocol, the fixed table of architectures (``ARCHITECTURES``) and the loader that reads a
model folder's ``config.json``; ``whisper``: the default head on the Whisper encoder; ``cnn``: the
MFCC-delta CNN-BiLSTM and ``mfcc`` its features; ``prosody``: pitch, level, rate and the neutral baselines.
"""

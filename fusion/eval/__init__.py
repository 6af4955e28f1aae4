"""``fusion eval``: the figures behind every model card, each from a CSV or JSONL evalset.

``text`` and ``stt``: the text model and speech-to-text; ``voice``: the voice model and lexical leakage;
``diaries``: the words half on whole diaries; ``alerts``: the mismatch alerts end to end; ``baselines``:
which neutral baseline a clip is heard against; ``metrics``: the shared figures (macro-F1, UAR, AUC).
"""

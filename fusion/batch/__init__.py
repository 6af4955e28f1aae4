"""Many recordings in, one JSON line each out: resumable, crash-safe, errors as records.

:func:`analyze_many` streams :class:`BatchResult` values; :func:`run_batch` (``fusion batch``)
writes them to a JSONL file that a kill -9 at any moment leaves valid: each line goes out in
one ``os.write`` and is fsynced, and a torn last line is cut off before the next run appends.
Each input gets its own line, keyed by its path and its content's key (sha256 + ``Config.fingerprint()``): a rerun
skips an input whose line is there, and an input whose content already has a line under another path (a moved
or identical file) gets a copy of it without a second analysis.

Inside a worker the models are loaded once; the next recordings decode on a thread while STT
runs on the current one, and the sentences of a chunk of recordings share one text-model call.

Modules: ``engine`` (inputs, planning the resume, the engines, :func:`run_batch`), ``worker``
(:class:`Worker` and the records it makes), ``results`` (the JSONL and CSV files), ``process``
(setting up a worker process), ``progress`` (the progress bar), ``ray_engine`` (``--engine ray``).
"""

from fusion.batch.engine import BatchSummary, analyze_many, collect_inputs, run_batch
from fusion.batch.results import ResultsFile, read_results, write_csv
from fusion.batch.worker import BatchResult, Worker, content_key

__all__ = ["analyze_many", "run_batch", "collect_inputs", "read_results", "write_csv", "BatchResult", "BatchSummary",
           "ResultsFile", "Worker", "content_key"]

"""Training runs that only read approved, verified shards and record exactly what they consumed.

- :func:`training.launcher.launch_run` gates a run (:mod:`training.gate`), starts ``torchrun``
  (gloo on CPU, nccl on GPU), and writes the run record to ``training_runs``, the model card
  (:mod:`training.card`) and the attribution statement (:mod:`training.attribution`) beside the
  weights in ``<home>/runs/<run_id>/``. A failed run resumes with ``resume=True``.
- :mod:`training.reference` is the reference trainer (track identification from log-mel crops).
- :mod:`training.runtime` is what any training process uses, the reference trainer and user
  scripts alike (see ``examples/train_byo.py``): data only through the linernotes dataset,
  exposure written after each optimizer step, checkpoints that carry model, optimizer, loader
  position and RNG, so a resumed run counts every sample exactly once.
"""

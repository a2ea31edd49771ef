"""Importing other trackers' history: ``sqltrack import SOURCE …``.

Each source module (``from_mlflow``, ``from_tensorboard``, ``from_wandb``,
``from_trackio``) reads its tool's files with the tool's own reader, imported when an
import runs (so ``import sqltrack`` needs none of them), and turns each run it finds into
a :class:`~sqltrack._import.model.SourceRun`. :mod:`~sqltrack._import.target` writes
those runs, each in one transaction, and keys each by a ``uid`` made from the source's
own run id: importing twice adds nothing, and an interrupted import resumes where it
stopped. docs/import.md has each source's mapping.
"""

"""Training-data pipeline: four preference sources -> filters -> teacher distillation -> split -> training sets.

Stages (each a module with a ``main`` CLI, wrapped by ``data_prep/*.py``):
``sources`` (load + filter into ``pairs.jsonl`` and ``images/``), ``distill`` (teacher critiques into an
append-only cache), ``split`` (teacher-correct vs hard, then the ms-swift and verl training sets).
"""

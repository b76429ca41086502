"""Structured pruning of a trained encoder and its recovery by distillation from the unpruned one (`edgessl prune`).

Imports nothing, so `edgessl.pruning.structure` (which the checkpoint loader uses) stays free of torch-pruning.
"""

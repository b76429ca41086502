"""Structured pruning of a trained encoder and its recovery by distillation from the unpruned one (`edgessl prune`).
"""

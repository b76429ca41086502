"""Measuring a frozen encoder below the engine: eval loaders, feature extraction, weighted kNN (`knn_top1`, the one
path every caller takes) and the linear probe."""

"""The training engine: optimizer and schedule, checkpoints, logging, the loop."""

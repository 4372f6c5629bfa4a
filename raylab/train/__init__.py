"""Training stage, one process: the training loop, metrics, folds, checkpoints and one fold end to end."""

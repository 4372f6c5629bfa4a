"""Ten-fold cross-validation: the driver and its Ray Train workers."""

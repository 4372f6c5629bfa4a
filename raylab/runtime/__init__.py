"""Runtime support: settings, MLflow tracking, host memory, file-system helpers, the doctor checks."""

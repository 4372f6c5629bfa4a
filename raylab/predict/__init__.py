"""Using the trained networks: `raylab predict` on any audio, MLflow pyfunc models, Ray Serve.

- `runs`: which fold checkpoints a `--run` names (run folder, fold folder, checkpoint, MLflow id);
- `audio`: the files the arguments name, each read and cut into windows as in training;
- `runner`: `Predictor`, one network or the mean of several on windows, inputs made as in training;
- `tables`: per-window and per-file probabilities on the 1-5 scale, classes, expected ratings;
- `batch`: many files (features on Ray tasks when many), bad files reported or skipped;
- `mlflow_model`: the pyfunc model logged with every fold and every ten-fold run;
- `serve`: the Ray Serve deployment behind `raylab serve`.
"""

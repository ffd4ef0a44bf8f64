"""Iris classifier: trains a small scikit-learn model on data/iris.csv at load() time.

Input:  {"instances": [[5.1, 3.5, 1.4, 0.2], ...]}
        (an instance may also be an object: {"sepal_length": 5.1, "sepal_width": 3.5, ...})
Output: {"predictions": [{"species": "setosa",
                          "probabilities": {"setosa": 0.97, "versicolor": 0.03, "virginica": 0.0}}, ...]}
"""

import csv
import math
import os
import time

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
MAX_INSTANCES = 10_000
EXAMPLE = '{"instances": [[5.1, 3.5, 1.4, 0.2]]}'


class Model:
    def __init__(self, data_dir, **kwargs):
        self._data_path = os.path.join(data_dir, "iris.csv")
        self._pipeline = None
        self._classes = []

    def load(self):
        # Imported here so that `gantry push` can check the package without scikit-learn.
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        started = time.monotonic()
        features, labels = [], []
        with open(self._data_path, newline="") as handle:
            for row in csv.DictReader(handle):
                features.append([float(row[name]) for name in FEATURES])
                labels.append(row["species"])
        if len(features) != 150:
            raise RuntimeError("expected 150 rows in %s, found %d" % (self._data_path, len(features)))

        pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        pipeline.fit(features, labels)
        self._pipeline = pipeline
        self._classes = [str(c) for c in pipeline.classes_]
        accuracy = pipeline.score(features, labels)
        print(
            "trained on %d rows in %.2fs, training accuracy %.3f"
            % (len(features), time.monotonic() - started, accuracy)
        )

    def predict(self, model_input):
        instances = self._parse(model_input)
        probabilities = self._pipeline.predict_proba(instances)
        predictions = []
        for row in probabilities:
            scores = {name: round(float(p), 4) for name, p in zip(self._classes, row)}
            best = max(range(len(row)), key=lambda i: row[i])
            predictions.append({"species": self._classes[best], "probabilities": scores})
        return {"predictions": predictions}

    @staticmethod
    def _parse(model_input):
        if not isinstance(model_input, dict) or "instances" not in model_input:
            raise ValueError('send a JSON object with an "instances" list, e.g. %s' % EXAMPLE)
        instances = model_input["instances"]
        if not isinstance(instances, list) or not instances:
            raise ValueError('"instances" must be a non-empty list, e.g. %s' % EXAMPLE)
        if len(instances) > MAX_INSTANCES:
            raise ValueError("at most %d instances per request, got %d" % (MAX_INSTANCES, len(instances)))
        rows = []
        for index, instance in enumerate(instances):
            if isinstance(instance, dict):
                missing = [name for name in FEATURES if name not in instance]
                if missing:
                    raise ValueError("instance %d is missing %s" % (index, ", ".join(missing)))
                values = [instance[name] for name in FEATURES]
            elif isinstance(instance, list):
                if len(instance) != len(FEATURES):
                    raise ValueError(
                        "instance %d has %d values; expected 4: %s (in cm)"
                        % (index, len(instance), ", ".join(FEATURES))
                    )
                values = instance
            else:
                raise ValueError(
                    "instance %d must be a list of 4 numbers (%s) or an object with those keys"
                    % (index, ", ".join(FEATURES))
                )
            for name, value in zip(FEATURES, values):
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise ValueError("instance %d: %s must be a number, got %r" % (index, name, value))
            rows.append([float(v) for v in values])
        return rows

"""Echo: answers every request with its own input and the GREETING environment variable."""

import os


class Model:
    def __init__(self, **kwargs):
        # Gantry passes config (the parsed config.yaml), data_dir and secrets.
        self._config = kwargs.get("config", {})

    def load(self):
        # Runs once, before the replica reports ready: open files, fetch weights, warm up.
        print("echo model loaded (GREETING=%r)" % os.environ.get("GREETING"))

    def predict(self, model_input):
        return {"echo": model_input, "greeting": os.environ.get("GREETING")}

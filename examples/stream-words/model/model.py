import hashlib
import time


class Model:
    """Streams the words of `text` one by one, `delay` seconds apart, then a summary line."""

    def __init__(self, secrets, **kwargs):
        self._secrets = secrets

    def load(self):
        # A real model would log in to its model hub with the token here; never print it.
        token = self._secrets["hf_access_token"]
        self._token_fingerprint = hashlib.sha256(token.encode()).hexdigest()[:12]

    def preprocess(self, model_input):
        # Truss's hook, run before predict: shape the request.
        return {"words": str(model_input.get("text", "")).split(), "delay": float(model_input.get("delay", 0.25))}

    def predict(self, request):
        for index, word in enumerate(request["words"]):
            if index:
                time.sleep(request["delay"])
            yield word + "\n"  # a str goes out as it is, the moment it is yielded
        # A dict goes out as one JSON line.
        yield {"words": len(request["words"]), "token_fingerprint": self._token_fingerprint}

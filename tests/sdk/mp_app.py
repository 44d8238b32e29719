"""A Flask app served by gunicorn in test_multiprocess.py (not a test module)."""

from flask import Flask

from vigil import sdk

app = Flask(__name__)


@app.get("/work/<int:n>")
def work(n: int) -> dict[str, int]:
    return {"n": n}


sdk.instrument(app, service="mp-test")

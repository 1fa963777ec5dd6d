"""The Celery app of the framework tests: Redis as broker AND result backend, both at
$CELERY_REDIS_URL (the proxy or a direct redis-server); every other setting is Celery's
default."""
import os

from celery import Celery

URL = os.environ.get("CELERY_REDIS_URL", "redis://127.0.0.1:6379/0")
app = Celery("fwtasks", broker=URL, backend=URL)


@app.task
def add(x, y):
    return x + y


@app.task
def tsum(numbers):
    return sum(numbers)


@app.task
def fail(tag):
    raise ValueError(f"boom {tag}")

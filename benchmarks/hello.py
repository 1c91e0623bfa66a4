"""H: the fastest a FastAPI app answers on this machine under uvicorn, with one async and one
plain (thread-pool) handler. The benchmark serves it with the same number of workers as
creditpool and reads the ratio of each creditpool figure to it."""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()


@app.get("/async")
async def hello_async() -> dict[str, str]:
    """Answer at once, on the event loop."""
    return {"hello": "world"}


@app.get("/sync")
def hello_sync() -> dict[str, str]:
    """Answer at once, from the thread pool (as creditpool's handlers run)."""
    return {"hello": "world"}

"""The API: ``POST /fingerprints`` submits the work and answers 202 at once with the task's ID;
``GET /fingerprints/{id}`` reports its state and result (``?wait=5`` waits up to 5 s for it).

One ``AsyncClient`` for the app's life, made in the lifespan: it pipelines requests over one
connection, so every request handler shares it, and it connects on first use (the API starts
even when the daemon is not up yet; a submit then answers 503).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel, Field

import asynctask
from asynctask.errors import (
    DaemonUnavailable,
    NotFound,
    SubmitThrottled,
    UsageError,
    WaitTimeout,
)
from examples.fastapi_app import tasks


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.asynctask = asynctask.AsyncClient()  # $ASYNCTASK_SOCKET, else the default home
    yield
    await app.state.asynctask.close()


app = FastAPI(title="fingerprints", lifespan=lifespan)


def tasks_client(request: Request) -> asynctask.AsyncClient:
    client: asynctask.AsyncClient = request.app.state.asynctask
    return client


Client = Annotated[asynctask.AsyncClient, Depends(tasks_client)]


class FingerprintRequest(BaseModel):
    text: str = Field(max_length=100_000)
    rounds: int = Field(default=10_000, ge=1, le=1_000_000)


@app.post("/fingerprints", status_code=202)
async def submit_fingerprint(body: FingerprintRequest, client: Client) -> dict[str, str]:
    try:
        handle = await client.submit(tasks.fingerprint, body.text, kwargs={"rounds": body.rounds})
    except (DaemonUnavailable, SubmitThrottled) as exc:
        raise HTTPException(503, f"the task daemon cannot take work now: {exc.message}") from None
    return {"id": handle.id}


@app.get("/fingerprints/{task_id}")
async def show_fingerprint(task_id: str, client: Client, wait: float = 0) -> dict[str, Any]:
    try:
        if wait > 0:
            status = await client.wait(task_id, timeout=min(wait, 30))
        else:
            status = await client.status(task_id)
    except WaitTimeout:
        status = await client.status(task_id)
    except (NotFound, UsageError):  # unknown, another tenant's, or not an ID at all
        raise HTTPException(404, "no such task") from None
    return {
        "id": status.id,
        "state": status.state.value,
        "result": status.result,
        "error": status.error,
    }

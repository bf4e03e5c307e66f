"""A FastAPI app whose users start jobs and watch them live with @headway/client.

Run, in this folder:  python3 -m uvicorn app:app --port 8000
Open http://127.0.0.1:8000/ (on the same host name as the hub: 127.0.0.1).

Configured by HEADWAY_URL and HEADWAY_API_KEY; APP_SECRET signs the session
cookie (a random one per start when unset). The login is a stand-in for your
app's own authentication: whatever decides who the user is decides whose
jobs the browser may watch, through `current_user`.
"""

import asyncio
import hashlib
import hmac
import os
import secrets
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Optional

try:
    import headway  # noqa: F401 - installed with `pip install ./clients/python`
except ImportError:  # run from a checkout without installing: use the repository's copy
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "clients" / "python"))

from fastapi import Cookie, Depends, FastAPI, Form, HTTPException
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from headway.aio import AsyncHeadway, AsyncJob, JobCancelled
from headway.fastapi import token_router

HERE = Path(__file__).resolve().parent
PACKAGES = HERE.parents[1] / "packages"
SECRET = os.environ.get("APP_SECRET") or secrets.token_hex(32)
COOKIE = "session"

hw = AsyncHeadway()  # HEADWAY_URL, HEADWAY_API_KEY
running = set()  # the background tasks, so that none is garbage-collected mid-way


@asynccontextmanager
async def lifespan(app: FastAPI):
    yield
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)
    await hw.aclose()


app = FastAPI(lifespan=lifespan)


# -- the application's own auth (a stand-in) --------------------------------------------


def sign(user: str) -> str:
    mac = hmac.new(SECRET.encode(), user.encode(), hashlib.sha256).hexdigest()
    return f"{user}.{mac}"


def current_user(session: Optional[str] = Cookie(None)) -> str:
    """The logged-in user, from the signed session cookie; 401 without one."""
    if session and "." in session:
        user, _, mac = session.rpartition(".")
        if hmac.compare_digest(sign(user), session):
            return user
    raise HTTPException(status_code=401, detail="log in first")


@app.post("/login")
def login(user: str = Form(...)):
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(COOKIE, sign(user), httponly=True, samesite="lax")
    return response


@app.post("/logout")
def logout():
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(COOKIE)
    return response


@app.get("/api/me")
def me(user: str = Depends(current_user)):
    return {"user": user}


# -- Headway ------------------------------------------------------------------------------

# POST /api/headway/token: a browser token for the logged-in user, refused without one.
app.include_router(token_router(hw, current_user), prefix="/api")


async def transcode(job: AsyncJob, seconds: float) -> None:
    """The work, in the background: a stage plan, and progress about every 100 ms."""
    steps = max(1, int(seconds * 10))
    try:
        async with job:  # completed on return, failed on an exception, cancelled on JobCancelled
            job.stage("probe")
            await job.sleep(0.1)
            job.stage("encode")
            for step in range(1, steps + 1):
                await job.sleep(seconds / steps)  # the work; a cancel or pause arrives here too
                job.progress(current=step, total=steps, unit="chunks")
            job.stage("package")
            await job.complete({"url": f"https://cdn.example/{job.id}.m3u8"})
    except JobCancelled:
        pass  # reported as cancelled already


@app.post("/api/transcodes")
async def start_transcode(seconds: float = 5.0, user: str = Depends(current_user)):
    job = await hw.create_job(user, name="Transcode", kind="transcode", stages=[("probe", 1), ("encode", 8), ("package", 1)])
    task = asyncio.create_task(transcode(job, min(max(seconds, 0.1), 600)))
    running.add(task)
    task.add_done_callback(running.discard)
    return {"job": job.id}


# -- the page, with @headway/client from the repository's build ----------------------------

app.mount("/vendor/client", StaticFiles(directory=PACKAGES / "client" / "dist", check_dir=False), name="client")
app.mount("/vendor/protocol", StaticFiles(directory=PACKAGES / "protocol" / "dist", check_dir=False), name="protocol")


@app.get("/")
def page():
    return FileResponse(HERE / "static" / "index.html")

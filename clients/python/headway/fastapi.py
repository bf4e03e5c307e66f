"""FastAPI and Headway: a route that mints browser tokens for the app's own user.

Who the user is stays the application's decision: pass the dependency that
your routes already use to identify the logged-in user. When it refuses the
request (raises ``HTTPException(401)``, say), no token is minted::

    from fastapi import FastAPI
    from headway.aio import AsyncHeadway
    from headway.fastapi import token_router

    hw = AsyncHeadway()
    app = FastAPI()
    app.include_router(token_router(hw, current_user), prefix="/api")

    # POST /api/headway/token -> {"token": "...", "expiresAt": "...", "url": "http://hub:7070"}

The page then hands a function that fetches this route to ``@headway/client``
(``createClient({url, token: fetchToken})``), which calls it again before the
token expires.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Union

from fastapi import APIRouter, Depends, Response
from starlette.concurrency import run_in_threadpool

from .aio import AsyncHeadway
from .client import Headway

__all__ = ["token_router"]


def token_router(
    headway: Union[AsyncHeadway, Headway],
    current_user: Callable[..., Any],
    *,
    path: str = "/headway/token",
    ttl: Optional[float] = None,
    user_id: Callable[[Any], str] = str,
    hub_url: Optional[str] = None,
) -> APIRouter:
    """A router with ``POST <path>``: a browser token for the user that
    ``current_user`` (a FastAPI dependency) returns, scoped to that user's jobs.

    ``user_id`` turns what the dependency returns into the Headway user id (the
    owner of the user's jobs; default ``str``). ``ttl`` is the token's lifetime in
    seconds (default: the hub's ``token-ttl-seconds``). ``hub_url`` is the hub's
    address as browsers reach it (default: the client's URL). Answers
    ``{"token", "expiresAt", "url"}``, with ``Cache-Control: no-store``."""
    router = APIRouter()
    public_url = hub_url or headway.url

    async def mint(user: str) -> Any:
        if isinstance(headway, AsyncHeadway):
            return await headway.mint_token(user, ttl=ttl)
        return await run_in_threadpool(headway.mint_token, user, None, ttl)

    @router.post(path, summary="Mint a Headway browser token for the logged-in user")
    async def mint_headway_token(response: Response, user: Any = Depends(current_user)) -> Dict[str, str]:
        minted = await mint(user_id(user))
        # A credential: no cache may keep it.
        response.headers["Cache-Control"] = "no-store"
        return {"token": minted["token"], "expiresAt": minted["expiresAt"], "url": public_url}

    return router


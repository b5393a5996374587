"""The console's gate, one middleware: a request without a valid session is sent to the sign-in page; a change
(POST) must carry the session's CSRF token; each answer slides the session's idle expiry forward. Domain errors
become an HTML page with the status the HTTP front door maps them to."""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gateway.console.sessions import Session, SessionSigner
from gateway.policy.keyring import KeyRing
from gateway.records.governance import KeyRecord, Role
from gateway.server.caller_error import caller_error
from gateway.server.openai_http.errors import status_of

log = logging.getLogger("gateway.console")

COOKIE = "gateway_console"
CALLER = web.RequestKey("console_caller", KeyRecord)
SESSION = web.RequestKey("console_session", Session)
PUBLIC = ("/console/login", "/console/static/")
_HEADERS = {
    # Scripts, styles and images only from the console itself (no inline script: data reaches the plots as JSON).
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
Render = Callable[[web.Request, str, int], web.Response]


def usable(key: KeyRecord | None, now: float) -> bool:
    """Whether a key may hold a console session: an admin or team-admin key, neither revoked nor expired."""
    return (
        key is not None
        and key.role is not Role.MEMBER
        and key.revoked_at is None
        and (key.expires_at is None or now < key.expires_at)
    )


def set_cookie(response: web.StreamResponse, signer: SessionSigner, session: Session, secure: bool) -> None:
    response.set_cookie(COOKIE, signer.dump(session), path="/console", httponly=True, samesite="Strict", secure=secure)


def guard(
    ring: KeyRing, signer: SessionSigner, error_page: Render, clock: Callable[[], float] = time.time
) -> Middleware:
    @web.middleware
    async def console_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await _guarded(request, handler)
        response.headers.update(_HEADERS)
        return response

    async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(PUBLIC):
            refused = await _admit(request)
            if refused is not None:
                return refused
        try:
            response = await handler(request)
        except web.HTTPException:
            raise
        except Exception as raw:  # the gateway's log has the details; the page says what caller_error lets out
            err = caller_error(raw, log)
            return error_page(request, err.message, status_of(err))
        session = request.get(SESSION)
        if session is not None and COOKIE not in response.cookies:  # sign-out clears it; others slide the expiry
            set_cookie(response, signer, Session(session.key_id, session.csrf, clock()), request.secure)
        return response

    async def _admit(request: web.Request) -> web.StreamResponse | None:
        """None when the request may go on (its caller and session set on it), else the answer that refuses it."""
        now = clock()
        cookie = request.cookies.get(COOKIE)
        session = signer.load(cookie, now) if cookie else None
        key = ring.get(session.key_id) if session is not None else None
        if session is None or key is None or not usable(key, now):
            return redirect("/console/login")
        if request.method == "POST":
            token = (await request.post()).get("csrf")
            if not isinstance(token, str) or not hmac.compare_digest(token, session.csrf):
                return error_page(request, "This change carried no valid CSRF token; reload the page.", 403)
        request[CALLER] = key
        request[SESSION] = session
        return None

    return console_guard


def redirect(location: str) -> web.Response:
    """A 303 returned, not raised: the front door's error middleware would turn a raised one into a JSON error."""
    return web.Response(status=303, headers={"Location": location})

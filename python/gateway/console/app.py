"""The console's routes, which the HTTP front door mounts at /console."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from gateway.console.guard import guard
from gateway.console.pages import Pages
from gateway.console.sessions import SessionSigner
from gateway.policy.keyring import KeyRing

STATIC = Path(__file__).parent / "static"


def console_app(pages: Pages, ring: KeyRing, signer: SessionSigner) -> web.Application:
    app = web.Application(middlewares=[guard(ring, signer, pages.error_page)])
    routes = app.router
    routes.add_get("/login", pages.login_form)
    routes.add_post("/login", pages.login)
    routes.add_post("/logout", pages.logout)
    routes.add_get("/", pages.overview)
    routes.add_get("/api/overview", pages.overview_data)
    routes.add_get("/calls", pages.calls)
    routes.add_get("/calls/{request_id}", pages.call)
    routes.add_post("/calls/{request_id}/replay", pages.replay)
    routes.add_post("/calls/{request_id}/compare", pages.compare)
    routes.add_get("/keys", pages.keys)
    routes.add_post("/keys", pages.create_key)
    routes.add_get("/keys/{key_id}", pages.key)
    routes.add_post("/keys/{key_id}/revoke", pages.revoke_key)
    routes.add_post("/keys/{key_id}/rotate", pages.rotate_key)
    routes.add_post("/keys/{key_id}/update", pages.update_key)
    routes.add_post("/keys/{key_id}/budget", pages.key_budget)
    routes.add_get("/teams", pages.teams)
    routes.add_post("/teams", pages.create_team)
    routes.add_post("/teams/{team}/budget", pages.team_budget)
    routes.add_get("/report", pages.report)
    routes.add_get("/report.{format}", pages.report_file)
    routes.add_static("/static", STATIC)
    return app

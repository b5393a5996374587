"""The console's pages. Handlers are thin: the form or query into domain values, one Admin, Insights or Compliance
operation under the signed-in key (which scopes a team admin to their team), the result into a template. A key's
secret appears once, in the answer that created or rotated it, and is never kept."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape

from gateway.admin.compliance import ComplianceOperations
from gateway.admin.compliance_files import FORMATS, MEDIA_TYPES, render, sections, when
from gateway.admin.operations import DEFAULT_GRACE_S, AdminOperations
from gateway.console import forms
from gateway.console.guard import CALLER, COOKIE, SESSION, redirect, set_cookie, usable
from gateway.console.overview import figures
from gateway.console.sessions import SessionSigner
from gateway.errors import FailedPrecondition, InvalidRequest, NotFound, Unauthenticated
from gateway.insights.operations import InsightsOperations
from gateway.insights.runner import request_from_audit
from gateway.observe.live import LiveShare, flag_entry, merge_flags
from gateway.pipeline import CallInfo
from gateway.pipeline.call import Api
from gateway.policy.keyring import KeyRing, grpc_peer
from gateway.records.audit import AuditFilter, AuditRecord, GroupBy, UsageFilter
from gateway.records.governance import BudgetScope, KeyRecord, Period, Role

RANGES_S = {"15m": 900.0, "1h": 3600.0, "6h": 21_600.0, "24h": 86_400.0}
_CALLS_SHOWN = 200
_REPORT_DEFAULT_S = 30 * 86_400.0
_NO_STORE = {"Cache-Control": "no-store"}


class Pages:
    def __init__(
        self,
        ring: KeyRing,
        signer: SessionSigner,
        admin: AdminOperations,
        insights: InsightsOperations,
        compliance: ComplianceOperations,
        live: LiveShare,
        flush_audit: Callable[[], Awaitable[None]],
        trace_url_template: str | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ring = ring
        self._signer = signer
        self._admin = admin
        self._insights = insights
        self._compliance = compliance
        self._live = live
        self._flush_audit = flush_audit
        """Waits until the records of calls answered so far are committed, so that a page shows them."""
        self._trace_url = trace_url_template
        self._clock = clock
        self._env = Environment(
            loader=PackageLoader("gateway.console", "templates"), autoescape=select_autoescape(default=True)
        )
        self._env.filters["when"] = when
        # Readable JSON, escaped by the autoescaping like any text (tojson would write < as \u003c).
        self._env.filters["pretty"] = lambda value: orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()

    # --- rendering --------------------------------------------------------------------------------------------------

    def page(self, request: web.Request, template: str, code: int = 200, **values: Any) -> web.Response:
        caller = request.get(CALLER)
        session = request.get(SESSION)
        html = self._env.get_template(template).render(
            caller=caller, csrf=session.csrf if session is not None else "", path=request.path, **values
        )
        return web.Response(text=html, status=code, content_type="text/html", headers=_NO_STORE)

    def error_page(self, request: web.Request, message: str, status: int) -> web.Response:
        return self.page(request, "error.html", status, message=message, status=status)

    # --- sign-in ----------------------------------------------------------------------------------------------------

    async def login_form(self, request: web.Request) -> web.StreamResponse:
        return self.page(request, "login.html")

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        secret = forms.text(form, "key")
        try:
            key = self._ring.authenticate([("authorization", f"Bearer {secret}")], grpc_peer(request.remote or "", 0))
        except Unauthenticated as err:
            return self.page(request, "login.html", 401, message=err.message)
        if not usable(key, self._clock()):
            return self.page(
                request,
                "login.html",
                403,
                message=f"key {key.id} is a member key: the console needs an admin or team-admin key",
            )
        response = redirect("/console/")
        set_cookie(response, self._signer, self._signer.new(key.id, self._clock()), request.secure)
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        response = redirect("/console/login")
        response.del_cookie(COOKIE, path="/console")
        return response

    # --- overview ---------------------------------------------------------------------------------------------------

    async def overview(self, request: web.Request) -> web.StreamResponse:
        return self.page(request, "overview.html", ranges=list(RANGES_S), chosen=_range(request))

    async def overview_data(self, request: web.Request) -> web.StreamResponse:
        caller = request[CALLER]
        range_s = RANGES_S[_range(request)]
        now = self._clock()
        await self._flush_audit()
        records = [r async for r in self._admin.export_audit(caller, AuditFilter(since=now - range_s, until=now + 1))]
        data = figures(records, now, range_s)
        _, forecast = await self._admin.usage(caller, GroupBy.TEAM, UsageFilter(now - range_s, now + 1), Period.MONTH)
        data["forecast"] = {"spent_usd": round(forecast.spent_usd, 6), "forecast_usd": round(forecast.forecast_usd, 6)}
        data["budgets"] = [
            {"team": team.name, "period": b.period.value, "cap_usd": b.hard_usd or b.soft_usd, "spent_usd": spent}
            for team in self._admin.list_teams(caller)
            for b, spent in self._admin.budgets_of(BudgetScope.TEAM, team.name)
        ]
        live = await self._live.merged()
        data["live"] = {
            "processes": live.processes,
            "stale": live.stale,
            "in_flight": live.in_flight,
            "queued": live.queued,
            "breakers": live.breakers,
            "drift": [{**f, "since": when(f["since"])} for f in merge_flags(live.drift, await self._drift(caller))],
            "last_purge": when(live.last_purge_at),
        }
        return web.Response(body=orjson.dumps(data), content_type="application/json", headers=_NO_STORE)

    async def _drift(self, caller: KeyRecord) -> list[dict[str, Any]]:
        """The flags of model health as Insights computes it here: under --workers, over every worker's windows of
        this machine, which may show a shift no single worker's share of the calls does."""
        try:
            health = await self._insights.model_health(caller, "", "")
        except FailedPrecondition:  # drift monitoring is off
            return []
        return [flag_entry(h.model, h.provider, f) for h in health for f in h.flags]

    # --- calls ------------------------------------------------------------------------------------------------------

    async def calls(self, request: web.Request) -> web.StreamResponse:
        caller = request[CALLER]
        query = request.query
        now = self._clock()
        since = now - forms.duration_s(query.get("since", ""), 86_400.0)
        await self._flush_audit()
        where = AuditFilter(
            since=since,
            team=query.get("team") or None,
            key_id=query.get("key") or None,
            status=query.get("status") or None,
            limit=_CALLS_SHOWN,
        )
        records = await self._admin.query_audit(caller, where)
        model = query.get("model", "")
        min_ms = forms.at_least(query.get("min_ms", ""), "min_ms")
        min_usd = forms.at_least(query.get("min_usd", ""), "min_usd")
        shown = [
            r
            for r in records
            if (not model or model in (r.model, r.served_model)) and r.latency_ms >= min_ms and r.cost_usd >= min_usd
        ]
        return self.page(request, "calls.html", calls=shown, query=query)

    async def call(self, request: web.Request) -> web.StreamResponse:
        caller = request[CALLER]
        request_id = request.match_info["request_id"]
        await self._flush_audit()
        found = await self._admin.query_audit(caller, AuditFilter(request_id=request_id, limit=1))
        if not found:  # another team's call is "not found" too, so ids cannot be probed
            raise NotFound(f"no audited call {request_id!r} that this key may read", reason="UNKNOWN_REQUEST")
        record = found[0]
        trace = trace_link(self._trace_url, record) if self._trace_url else None
        return self.page(request, "call.html", call=record, trace_url=trace)

    async def replay(self, request: web.Request) -> web.StreamResponse:
        """The call sent again under the signed-in key, to its model or another, beside the stored answer."""
        caller = request[CALLER]
        form = await request.post()
        replayed = await self._insights.replay(
            caller, request.match_info["request_id"], forms.text(form, "target"), {}, _info(request, caller)
        )
        original = replayed.original
        columns = [
            (f"original: {original.served_model or original.model}", original.response_body or "", None),
            (f"replay: {forms.text(form, 'target') or original.model}", replayed.outcome.text, replayed.outcome.error),
        ]
        return self.page(request, "answers.html", call=original, columns=columns, similarity=replayed.similarity)

    async def compare(self, request: web.Request) -> web.StreamResponse:
        """The call's request sent to each of the models or routes named, their answers side by side."""
        caller = request[CALLER]
        form = await request.post()
        targets = [t.strip() for t in forms.text(form, "targets").split(",") if t.strip()]
        found = await self._admin.query_audit(caller, AuditFilter(request_id=request.match_info["request_id"], limit=1))
        if not found:
            raise NotFound("no audited call by that id that this key may read", reason="UNKNOWN_REQUEST")
        if not targets:
            raise InvalidRequest("name one or more models or routes to compare, separated by commas")
        chat = request_from_audit(found[0], model=targets[0], overrides={})
        compared = await self._insights.compare(caller, targets, chat, _info(request, caller))
        columns = [(t, o.text, o.error) for t, o in zip(compared.targets, compared.outcomes, strict=True)]
        return self.page(request, "answers.html", call=found[0], columns=columns, similarity=None)

    # --- keys and teams ---------------------------------------------------------------------------------------------

    async def keys(self, request: web.Request) -> web.StreamResponse:
        caller = request[CALLER]
        team = request.query.get("team") or None
        records = await self._admin.list_keys(caller, team, include_revoked=True)
        teams = self._admin.list_teams(caller)
        return self.page(request, "keys.html", keys=records, teams=teams, roles=_issuable(caller))

    async def create_key(self, request: web.Request) -> web.StreamResponse:
        caller = request[CALLER]
        form = await request.post()
        budgets = []
        if forms.text(form, "hard_usd"):
            budgets.append(forms.budget(form, BudgetScope.KEY, "-"))
        record, secret = await self._admin.create_key(caller, forms.key_draft(form, caller), budgets)
        return self.page(request, "key_secret.html", key=record, secret=secret, action="created")

    async def key(self, request: web.Request) -> web.StreamResponse:
        record = await self._admin.get_key(request[CALLER], request.match_info["key_id"])
        budgets = self._admin.budgets_of(BudgetScope.KEY, record.id)
        return self.page(request, "key.html", key=record, budgets=budgets)

    async def revoke_key(self, request: web.Request) -> web.StreamResponse:
        record = await self._admin.revoke_key(request[CALLER], request.match_info["key_id"])
        return redirect(f"/console/keys/{record.id}")

    async def rotate_key(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        grace = forms.duration_s(forms.text(form, "grace"), DEFAULT_GRACE_S)
        record, secret = await self._admin.rotate_key(request[CALLER], request.match_info["key_id"], grace)
        return self.page(request, "key_secret.html", key=record, secret=secret, action="rotated")

    async def update_key(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        changes = {"limits": forms.limits(form), "models": forms.models(form)}
        record = await self._admin.update_key(request[CALLER], request.match_info["key_id"], changes)
        return redirect(f"/console/keys/{record.id}")

    async def key_budget(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        key_id = request.match_info["key_id"]
        await self._admin.set_budget(request[CALLER], forms.budget(form, BudgetScope.KEY, key_id))
        return redirect(f"/console/keys/{key_id}")

    async def teams(self, request: web.Request) -> web.StreamResponse:
        caller = request[CALLER]
        teams = [(t, self._admin.budgets_of(BudgetScope.TEAM, t.name)) for t in self._admin.list_teams(caller)]
        return self.page(request, "teams.html", teams=teams)

    async def create_team(self, request: web.Request) -> web.StreamResponse:
        from gateway.records.governance import Team

        form = await request.post()
        retention = forms.optional_int(form, "retention_days") or 0
        await self._admin.create_team(request[CALLER], Team(name=forms.text(form, "name"), retention_days=retention))
        return redirect("/console/teams")

    async def team_budget(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        team = request.match_info["team"]
        await self._admin.set_budget(request[CALLER], forms.budget(form, BudgetScope.TEAM, team))
        return redirect("/console/teams")

    # --- compliance -------------------------------------------------------------------------------------------------

    async def report(self, request: web.Request) -> web.StreamResponse:
        caller = request[CALLER]
        team = request.query.get("team") or caller.team
        since = request.query.get("since", "30d")
        report = await self._report(request, team, since)
        return self.page(request, "report.html", report=report, sections=sections(report), since=since, formats=FORMATS)

    async def report_file(self, request: web.Request) -> web.StreamResponse:
        fmt = request.match_info["format"]
        if fmt not in FORMATS:
            raise InvalidRequest(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}")
        team = request.query.get("team") or request[CALLER].team
        report = await self._report(request, team, request.query.get("since", "30d"))
        name = f"compliance-{report.team}-{time.strftime('%Y%m%d', time.gmtime(report.until))}.{fmt}"
        return web.Response(
            body=render(report, fmt),
            content_type=MEDIA_TYPES[fmt],
            headers={**_NO_STORE, "Content-Disposition": f'attachment; filename="{name}"'},
        )

    async def _report(self, request: web.Request, team: str, since: str) -> Any:
        now = self._clock()
        await self._flush_audit()
        return await self._compliance.report(
            request[CALLER], team, now - forms.duration_s(since, _REPORT_DEFAULT_S), now + 1
        )


def trace_link(template: str, record: AuditRecord) -> str | None:
    """`observe.trace_url_template` filled in for the call; None when it names the trace id and the call has none
    (it was not traced and its caller sent no `traceparent`), rather than a link to nothing."""
    if "{trace_id}" in template and not record.trace_id:
        return None
    return template.replace("{trace_id}", record.trace_id).replace("{request_id}", record.request_id)


def _info(request: web.Request, caller: KeyRecord) -> CallInfo:
    """A Replay or Compare as the pipeline sees it: the session's key, already authenticated; the HTTP front door's
    peer; no deadline but the providers' own."""
    return CallInfo([], None, f"ipv4:{request.remote or ''}:0", api=Api.HTTP, signed_in=caller)


def _range(request: web.Request) -> str:
    chosen = request.query.get("range", "1h")
    return chosen if chosen in RANGES_S else "1h"


def _issuable(caller: KeyRecord) -> list[str]:
    """The roles the caller may give a new key: never above its own."""
    if caller.role is Role.ADMIN:
        return [r.value for r in Role]
    return [Role.MEMBER.value, Role.TEAM_ADMIN.value]

"""The explorer's routes: each page at `/<page>/...` as HTML and at `/api/<page>/...` as JSON, from one view
(node/http/views.py), plus `/metrics` and `/search`. GET only; errors are 400/404 with a reason."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from node.http import pages, views
from node.http.views import BadRequest, Explorer, NotFound

View = Callable[[Explorer, Request], Awaitable[Any]]
# Page name -> (its path, its view). The chain page ("blocks") is also the home page.
ROUTES: dict[str, tuple[str, View]] = {
    "blocks": ("/blocks", lambda e, r: views.blocks(e, r.query_params.get("top"), r.query_params.get("count"))),
    "status": ("/status", lambda e, r: views.status(e)),
    "block": ("/block/{height}", lambda e, r: views.block(e, r.path_params["height"])),
    "tx": ("/tx/{id}", lambda e, r: views.transaction(e, r.path_params["id"])),
    "account": ("/account/{address}", lambda e, r: views.account(e, r.path_params["address"])),
    "app": ("/app/{address}", lambda e, r: views.asset(e, "app", r.path_params["address"])),
    "dataset": ("/dataset/{address}", lambda e, r: views.asset(e, "dataset", r.path_params["address"])),
    "workerpool": ("/workerpool/{address}", lambda e, r: views.asset(e, "workerpool", r.path_params["address"])),
    "deal": ("/deal/{id}", lambda e, r: views.deal(e, r.path_params["id"])),
    "task": ("/task/{id}", lambda e, r: views.task(e, r.path_params["id"])),
    "orders": ("/orders", lambda e, r: views.orders(e, dict(r.query_params))),
    "order": ("/order/{id}", lambda e, r: views.order(e, r.path_params["id"])),
    "validators": ("/validators", lambda e, r: views.validators(e)),
}


def build_app(explorer: Explorer) -> Starlette:
    routes: list[Route] = []
    for name, (path, view) in ROUTES.items():
        routes.append(Route("/api" + path, _json_endpoint(explorer, view), methods=["GET"]))
        routes.append(Route(path, _html_endpoint(explorer, name, view), methods=["GET"]))

    async def home(request: Request) -> Response:
        return await _html_endpoint(explorer, "blocks", ROUTES["blocks"][1])(request)

    async def metrics(request: Request) -> Response:
        return Response(explorer.metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def search(request: Request) -> Response:
        term = request.query_params.get("q", "")
        try:
            return RedirectResponse(await views.search(explorer, term), status_code=303)
        except (BadRequest, NotFound) as exc:
            return _html_error(exc, "search")

    async def api_search(request: Request) -> Response:
        try:
            return JSONResponse({"page": await views.search(explorer, request.query_params.get("q", ""))})
        except (BadRequest, NotFound) as exc:
            return _json_error(exc)

    async def not_found(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": "no such API path: see the README's explorer section"}, status_code=404)
        return PlainTextResponse("no such page", status_code=404)

    routes += [
        Route("/", home, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/search", search, methods=["GET"]),
        Route("/api/search", api_search, methods=["GET"]),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})


def _json_endpoint(explorer: Explorer, view: View) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return JSONResponse(await view(explorer, request))
        except (BadRequest, NotFound) as exc:
            return _json_error(exc)

    return endpoint


def _html_endpoint(explorer: Explorer, name: str, view: View) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            document = await view(explorer, request)
        except (BadRequest, NotFound) as exc:
            return _html_error(exc, name)
        api_path = "/api" + (request.url.path if request.url.path != "/" else "/blocks")
        return HTMLResponse(pages.render(name, document, api_path))

    return endpoint


def _status(exc: Exception) -> int:
    return 404 if isinstance(exc, NotFound) else 400


def _json_error(exc: Exception) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=_status(exc))


def _html_error(exc: Exception, name: str) -> Response:
    return HTMLResponse(pages.error_page(name, str(exc), _status(exc)), status_code=_status(exc))


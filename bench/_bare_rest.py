"""The REST baseline: a bare Starlette JSON endpoint under uvicorn with kubegate's settings.

    python bench/_bare_rest.py PORT [--freeze]

``GET /api/tasks`` answers a constant ``{"tasks": []}``: no auth, no database, no validation,
so the ratio shows everything kubegate adds. The uvicorn settings are ``kubegate serve``'s
(httptools, no access log, no server header, 15 s keep-alive); ``--freeze`` adds its
start-up ``gc.freeze()``.
"""

from __future__ import annotations

import gc
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


async def tasks(request: Request) -> Response:
    return JSONResponse({"tasks": []})


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def main(port: int, freeze: bool) -> None:
    app = Starlette(routes=[Route("/api/tasks", tasks), Route("/healthz", healthz)])
    if freeze:
        gc.collect()
        gc.freeze()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", http="httptools", access_log=False,
                server_header=False, timeout_keep_alive=15)


if __name__ == "__main__":
    main(int(sys.argv[1]), "--freeze" in sys.argv[2:])

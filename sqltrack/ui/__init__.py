"""The live dashboard, ``sqltrack ui``: a read-only web page and JSON API over the database.

Example::

    from sqltrack.ui import create_app

    app = create_app(sqltrack.Client())  # an ASGI app: uvicorn, or Starlette's TestClient

Built on Starlette (the web framework) and served by uvicorn; the page draws its charts
with uPlot, shipped inside the package (the page loads nothing from elsewhere). Install
with ``pip install 'sqltrack[ui]'``. The API is documented in docs/ui.md.
"""

from __future__ import annotations

from ._app import create_app, serve

__all__ = ["create_app", "serve"]

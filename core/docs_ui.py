"""The API reference UI (``/schema``, ``/schema/swagger``) served entirely by Paymesh.

Litestar's render plugins load their JavaScript and CSS from a CDN by default, which
leaves a blank page on a machine without internet access. Swagger UI's files ship in the
``swagger-ui-py`` package; Paymesh serves them itself under :data:`ASSETS` and points the
plugin (script, stylesheet, favicon) there. Swagger UI is the only renderer, so it
answers on ``/schema`` too.
"""

from __future__ import annotations

from pathlib import Path

import swagger_ui
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.router import Router
from litestar.static_files import create_static_files_router

ASSETS = "/schema/assets"
_FILES = Path(swagger_ui.__file__).resolve().parent / "static"


def swagger_plugin() -> SwaggerRenderPlugin:
    return SwaggerRenderPlugin(
        js_url=f"{ASSETS}/swagger-ui-bundle.js",
        css_url=f"{ASSETS}/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{ASSETS}/favicon-32x32.png'>",
        path="/swagger",
    )


def assets_router() -> Router:
    """Swagger UI's static files (read-only, no authentication: they are public code)."""
    return create_static_files_router(
        path=ASSETS, directories=[_FILES], include_in_schema=False, name="swagger-ui-assets"
    )

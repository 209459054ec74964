"""Starlette's ``TestClient``, imported without the warning starlette 1.x gives at import.

It warns that it would rather drive httpx2; the TestClient works with httpx, and the
project's pytest turns every warning into an error. Import it from here.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    from starlette.exceptions import StarletteDeprecationWarning

    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

__all__ = ["TestClient"]

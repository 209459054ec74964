"""Print an AST back to ``$filter`` text in the v2 or v3 dialect."""

from __future__ import annotations

from ..protocol.headers import ApiVersion
from .ast import Expr


def to_odata(expr: Expr, version: ApiVersion = ApiVersion.V3) -> str:
    """Print ``expr`` as ``$filter`` text in the dialect of ``version``."""
    raise NotImplementedError

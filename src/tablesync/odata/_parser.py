"""Parse ``$filter``, ``$orderby`` and ``$select`` text of both protocol dialects into the AST."""

from __future__ import annotations

from .ast import Expr, OrderBy


def parse_filter(text: str, *, max_length: int = 4096, max_depth: int = 32) -> Expr:
    """Parse a ``$filter`` expression (v2 and v3 dialects alike) into an :data:`Expr`.

    Raises:
        ODataSyntaxError: when the text is malformed, too long or nested too deeply.
    """
    raise NotImplementedError


def parse_orderby(text: str, *, max_terms: int = 16) -> tuple[OrderBy, ...]:
    """Parse an ``$orderby`` list such as ``title desc, year``.

    Raises:
        ODataSyntaxError: when the text is malformed or has more than ``max_terms`` terms.
    """
    raise NotImplementedError


def parse_select(text: str) -> tuple[str, ...]:
    """Parse a ``$select`` list of property names; ``*`` or an empty text selects everything.

    Raises:
        ODataSyntaxError: when a name is malformed.
    """
    raise NotImplementedError

"""The OData query language shared by the client and the server: parse, build, print.

```python
from tablesync.odata import F, Query, parse_filter, to_odata

expr = parse_filter("year(releaseDate) eq 1994 and rating ne 'PG-13'")
query = Query((F.rating == "PG") & (F.year > 2000), order_by="title desc", top=5)
```
"""

from ._builder import F as F
from ._builder import Term as Term
from ._parser import parse_filter as parse_filter
from ._parser import parse_orderby as parse_orderby
from ._parser import parse_select as parse_select
from ._printer import to_odata as to_odata
from ._query import Query as Query
from .ast import FUNCTIONS as FUNCTIONS
from .ast import Binary as Binary
from .ast import BinaryOp as BinaryOp
from .ast import Call as Call
from .ast import EdmType as EdmType
from .ast import Expr as Expr
from .ast import In as In
from .ast import Literal as Literal
from .ast import LiteralKind as LiteralKind
from .ast import Member as Member
from .ast import OrderBy as OrderBy
from .ast import Unary as Unary
from .ast import UnaryOp as UnaryOp

__all__ = [
    "Binary",
    "BinaryOp",
    "Call",
    "EdmType",
    "Expr",
    "F",
    "FUNCTIONS",
    "In",
    "Literal",
    "LiteralKind",
    "Member",
    "OrderBy",
    "Query",
    "Term",
    "Unary",
    "UnaryOp",
    "parse_filter",
    "parse_orderby",
    "parse_select",
    "to_odata",
]

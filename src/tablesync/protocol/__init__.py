"""The wire contract shared by the client and the server: no I/O, no SQLAlchemy, no sockets.

See ``docs/architecture.md`` and the protocol reference for the facts behind each rule.
"""

from .codec import dumps as dumps
from .codec import dumps_texts as dumps_texts
from .codec import loads as loads
from .dates import format_datetime as format_datetime
from .dates import from_millis as from_millis
from .dates import parse_datetime as parse_datetime
from .dates import to_millis as to_millis
from .headers import ApiVersion as ApiVersion
from .headers import etag_from_version as etag_from_version
from .headers import parse_api_version as parse_api_version
from .headers import parse_etag_list as parse_etag_list
from .headers import version_from_etag as version_from_etag
from .ids import all_valid_ids as all_valid_ids
from .ids import is_valid_id as is_valid_id
from .ids import new_id as new_id
from .records import SYSTEM_PROPERTIES as SYSTEM_PROPERTIES
from .records import strip_system_properties as strip_system_properties

__all__ = [
    "SYSTEM_PROPERTIES",
    "ApiVersion",
    "dumps",
    "dumps_texts",
    "etag_from_version",
    "format_datetime",
    "from_millis",
    "all_valid_ids",
    "is_valid_id",
    "loads",
    "new_id",
    "parse_api_version",
    "parse_datetime",
    "parse_etag_list",
    "strip_system_properties",
    "to_millis",
    "version_from_etag",
]

"""A local imgix Management API: a real HTTP server on loopback for tests and the local run.

One module per imgix resource, each citing the page it follows (or saying "undocumented:
modelled as ..."): errors (auth and errors), limits, sources, assets, uploads, purges.
server holds the route table and the HTTP side; faults and origin are test machinery.
"""

from localdev.imgix_emulator.account import Asset
from localdev.imgix_emulator.errors import (
    ALL_PERMISSIONS,
    ASSET_BROWSE,
    ASSET_EDIT,
    PURGE,
    SOURCES,
    ApiError,
)
from localdev.imgix_emulator.faults import FAULT_KINDS, FaultPlan
from localdev.imgix_emulator.limits import PUBLISHED_LIMITS
from localdev.imgix_emulator.origin import Origin, OriginObject, S3Origin
from localdev.imgix_emulator.server import ROUTES, Call, ImgixEmulator
from localdev.imgix_emulator.uploads import DIRECT_UPLOAD_MAX, SESSION_LIFETIME_S

__all__ = [
    "ALL_PERMISSIONS",
    "ASSET_BROWSE",
    "ASSET_EDIT",
    "DIRECT_UPLOAD_MAX",
    "FAULT_KINDS",
    "PUBLISHED_LIMITS",
    "PURGE",
    "ROUTES",
    "SESSION_LIFETIME_S",
    "SOURCES",
    "ApiError",
    "Asset",
    "Call",
    "FaultPlan",
    "ImgixEmulator",
    "Origin",
    "OriginObject",
    "S3Origin",
]

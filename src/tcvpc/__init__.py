"""tcvpc: an asyncio client for the Tencent Cloud VPC API (API 3.0, TC3-HMAC-SHA256).

The public surface is re-exported here; everything else is an implementation detail.
"""

from tcvpc._version import __version__

__all__ = ["__version__"]

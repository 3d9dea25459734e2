"""The API's documented size limits, shared by the client and the cleanup job.

They are facts about DescribeVpnConnections, not choices of either user, so they live apart from
both: the job can plan its calls (discovery chunks, watcher batches) without importing the client.
"""

from __future__ import annotations

__all__ = ["MAX_FILTERS", "MAX_FILTER_VALUES", "PAGE_LIMIT"]

PAGE_LIMIT = 100
"""The largest ``Limit`` DescribeVpnConnections accepts, and the most ``VpnConnectionIds``."""
MAX_FILTERS = 10
"""The most entries in ``Filters``."""
MAX_FILTER_VALUES = 5
"""The most ``Values`` one filter may hold."""

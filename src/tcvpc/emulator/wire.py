"""Action parameters as they arrive flattened in a query string or form body.

The official SDKs flatten nested parameters for ``GET`` and for the older signature:
``Filters.0.Values.1=x`` is ``{"Filters": [{"Values": [.., "x"]}]}``, and every value is a
string. This module rebuilds the JSON shape the handlers expect, so each action is written once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from tcvpc.emulator.errors import EmuApiError

__all__ = ["MAX_DEPTH", "MAX_FIELDS", "coerce_ints", "pairs_to_dict", "unflatten"]

_INT_RE = re.compile(r"^-?[0-9]{1,18}$")
#: More parameters than any request of ours needs (100 ids, 10 filters x 5 values, paging).
MAX_FIELDS = 1000
#: Deeper than any VPC parameter (``Filters.0.Values.1`` is 4); bounds a hostile name's cost.
MAX_DEPTH = 6


def pairs_to_dict(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Decoded ``name=value`` pairs as a dict; a repeated name is ``InvalidParameter``."""
    out: dict[str, str] = {}
    for name, value in pairs:
        if name in out:
            raise EmuApiError("InvalidParameter", f"The parameter `{name}` is given twice.")
        out[name] = value
    return out


def unflatten(flat: Mapping[str, str]) -> dict[str, Any]:
    """Rebuild nested objects and lists from dotted names (list indices must be 0..n-1)."""
    root: dict[str, Any] = {}
    for name, value in flat.items():
        parts = name.split(".", MAX_DEPTH)
        if len(parts) > MAX_DEPTH:
            raise EmuApiError("InvalidParameter", f"The parameter name `{name[:80]}` is too deep.")
        if "" in parts:
            raise EmuApiError("InvalidParameter", f"The parameter name `{name}` is malformed.")
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise EmuApiError("InvalidParameter", f"The parameter `{name}` conflicts.")
            node = child
        if parts[-1] in node:
            raise EmuApiError("InvalidParameter", f"The parameter `{name}` conflicts.")
        node[parts[-1]] = value
    return {key: _listify(value, f"{key}.") for key, value in root.items()}


def _listify(node: Any, where: str) -> Any:
    if not isinstance(node, dict):
        return node
    if node and all(key.isdigit() for key in node):
        indices = sorted(int(key) for key in node)
        if indices != list(range(len(indices))) or any(str(i) not in node for i in indices):
            raise EmuApiError("InvalidParameter", f"The indices of `{where[:-1]}` must be 0..n-1.")
        return [_listify(node[str(i)], f"{where}{i}.") for i in indices]
    return {key: _listify(value, f"{where}{key}.") for key, value in node.items()}


def coerce_ints(params: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """Turn the top-level string values of ``names`` that spell an integer into ints."""
    for name in names:
        value = params.get(name)
        if isinstance(value, str) and _INT_RE.match(value):
            params[name] = int(value)
    return params

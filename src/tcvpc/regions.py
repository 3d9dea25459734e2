"""Tencent Cloud's public regions, finance regions included (a snapshot; the server decides).

The client sends any region it is given (Tencent adds regions; the server is the authority).
The cleanup command checks its region against this list so that a typo is a clear error before
anything is sent, and ``--any-region`` lets a newer region through.
"""

from __future__ import annotations

KNOWN_REGIONS: tuple[str, ...] = (
    "ap-guangzhou",
    "ap-shanghai",
    "ap-nanjing",
    "ap-beijing",
    "ap-chengdu",
    "ap-chongqing",
    "ap-hongkong",
    "ap-singapore",
    "ap-jakarta",
    "ap-seoul",
    "ap-tokyo",
    "ap-bangkok",
    "ap-mumbai",
    "ap-shanghai-fsi",
    "ap-shenzhen-fsi",
    "ap-beijing-fsi",
    "na-siliconvalley",
    "na-ashburn",
    "na-toronto",
    "sa-saopaulo",
    "eu-frankfurt",
    "eu-moscow",
)


def is_known_region(name: str) -> bool:
    return name in KNOWN_REGIONS

"""The package version, in one place (pyproject reads the same number)."""

__version__ = "0.1.0"

USER_AGENT = f"tcvpc/{__version__}"
"""Who sends our requests, in the header servers and proxies log clients by. It replaces the one
aiohttp would add (so it costs no extra header), and stands for the optional
``X-TC-RequestClient`` the official SDKs send."""

"""Credentials: secrets stay out of reprs; the default chain looks where users keep them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcvpc import Credential, CredentialsNotFoundError, default_credential
from tcvpc.credentials import from_profile


def test_repr_and_str_hide_secret_and_token() -> None:
    cred = Credential("AKIDabcdefghijkl", "the-secret-key", "the-token")
    for text in (repr(cred), str(cred), f"{cred}", repr([cred])):
        assert "the-secret-key" not in text
        assert "the-token" not in text
        assert "AKIDabcd" in text


def test_credential_is_immutable_and_validated() -> None:
    cred = Credential("AKID", "k")
    with pytest.raises(AttributeError):
        cred.secret_key = "other"  # type: ignore[misc]
    with pytest.raises(ValueError, match="secret_id"):
        Credential("", "k")
    with pytest.raises(ValueError, match="secret_key"):
        Credential("AKID", "")


def test_environment_comes_first(tmp_path: Path) -> None:
    profile = tmp_path / "credentials"
    profile.write_text("[default]\nsecret_id = FROMFILE\nsecret_key = filekey\n")
    env = {
        "TENCENTCLOUD_SECRET_ID": "FROMENV",
        "TENCENTCLOUD_SECRET_KEY": "envkey",
        "TENCENTCLOUD_TOKEN": "tok",
        "TENCENTCLOUD_CREDENTIALS_FILE": str(profile),
    }
    assert default_credential(env) == Credential("FROMENV", "envkey", "tok")
    del env["TENCENTCLOUD_SECRET_KEY"]
    assert default_credential(env) == Credential("FROMFILE", "filekey")


def test_nothing_found_names_every_place(tmp_path: Path) -> None:
    env = {"TENCENTCLOUD_CREDENTIALS_FILE": str(tmp_path / "missing")}
    with pytest.raises(CredentialsNotFoundError) as info:
        default_credential(env)
    message = str(info.value)
    for place in ("TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY", str(tmp_path / "missing")):
        assert place in message


def test_profile_without_default_section_or_keys(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_text("[other]\nsecret_id = X\nsecret_key = Y\n")
    assert from_profile(path) is None
    path.write_text("[default]\nsecret_id = X\n")
    assert from_profile(path) is None
    path.write_text("not an ini file at all [[[\n")
    with pytest.raises(CredentialsNotFoundError, match="unreadable"):
        from_profile(path)

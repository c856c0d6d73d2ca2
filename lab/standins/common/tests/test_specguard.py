from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.standins.common.specguard import SpecGuard

SPECS = Path(__file__).resolve().parents[4] / "specs"


@pytest.fixture(scope="module")
def emqx() -> SpecGuard:
    return SpecGuard.from_file(
        SPECS / "emqx-ce-5.8.6-openapi.json", "http://emqx:18083", server_url="/api/v5"
    )


@pytest.fixture(scope="module")
def thingsboard() -> SpecGuard:
    return SpecGuard.from_file(
        SPECS / "thingsboard-ce-4.3.1.2-SNAPSHOT-openapi.json",
        "http://tb:8080",
        server_url="http://tb:8080",
    )


def test_conforming_emqx_request_passes(emqx: SpecGuard) -> None:
    body = json.dumps({"user_id": "dev-1", "password": "s3cret"}).encode()
    problems = emqx.check(
        "POST", "/api/v5/authentication/password_based:built_in_database/users", body=body
    )
    assert problems == []


def test_emqx_body_missing_required_field_is_reported(emqx: SpecGuard) -> None:
    body = json.dumps({"userid": "dev-1"}).encode()
    problems = emqx.check(
        "POST", "/api/v5/authentication/password_based:built_in_database/users", body=body
    )
    assert problems
    assert "user_id" in problems[0]


def test_unknown_path_is_reported(emqx: SpecGuard) -> None:
    assert emqx.check("GET", "/api/v5/no/such/endpoint")


IMPORT_USERS = "/api/v5/authentication/password_based:built_in_database/import_users"
MULTIPART = "multipart/form-data; boundary=xyz"
MULTIPART_BODY = (
    b'--xyz\r\nContent-Disposition: form-data; name="filename"; filename="u.json"\r\n'
    b"Content-Type: application/json\r\n\r\n[]\r\n--xyz--\r\n"
)


def test_missing_required_query_is_reported(emqx: SpecGuard) -> None:
    problems = emqx.check("POST", IMPORT_USERS, body=MULTIPART_BODY, content_type=MULTIPART)
    assert any("type" in p for p in problems)
    query = [("type", "plain")]
    assert (
        emqx.check("POST", IMPORT_USERS, query=query, body=MULTIPART_BODY, content_type=MULTIPART)
        == []
    )


def test_json_list_import_is_not_what_the_spec_declares(emqx: SpecGuard) -> None:
    # The spec types the JSON import body as an object (the list is only its example), so a
    # client that must conform uploads the file as multipart instead.
    body = json.dumps([{"user_id": "a", "password": "b"}]).encode()
    assert emqx.check("POST", IMPORT_USERS, query=[("type", "plain")], body=body)


def test_security_is_checked_only_when_asked(emqx: SpecGuard) -> None:
    assert emqx.check("GET", "/api/v5/nodes") == []
    assert emqx.check("GET", "/api/v5/nodes", check_security=True)
    basic = {"Authorization": "Basic a2V5OnNlY3JldA=="}
    assert emqx.check("GET", "/api/v5/nodes", headers=basic, check_security=True) == []


def test_thingsboard_login_conforms(thingsboard: SpecGuard) -> None:
    body = json.dumps({"username": "a@b.c", "password": "x"}).encode()
    assert thingsboard.check("POST", "/api/auth/login", body=body) == []


def test_thingsboard_wrong_method_is_reported(thingsboard: SpecGuard) -> None:
    assert thingsboard.check("DELETE", "/api/auth/login")


def test_null_fields_count_as_absent_only_when_asked(thingsboard: SpecGuard) -> None:
    body = json.dumps({"name": "d1", "label": None, "deviceProfileId": None}).encode()
    assert thingsboard.check("POST", "/api/device", body=body)
    assert thingsboard.check("POST", "/api/device", body=body, drop_nulls=True) == []

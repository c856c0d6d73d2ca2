from __future__ import annotations

import requests

from .conftest import SYSADMIN_PASSWORD, Api, StandIn


def test_login_page_is_the_readiness_probe(standin: StandIn) -> None:
    response = requests.get(standin.url + "/login", timeout=5)
    assert response.status_code == 200
    assert "text/html" in response.headers["Content-Type"]


def test_default_sysadmin_password_is_refused_after_change(standin: StandIn, sysadmin: Api) -> None:
    Api(standin.url).post(
        "/api/auth/login",
        expect=401,
        json={"username": "sysadmin@thingsboard.org", "password": "sysadmin"},
    )
    again = Api.login(standin.url, "sysadmin@thingsboard.org", SYSADMIN_PASSWORD)
    assert again.get("/api/auth/user")["authority"] == "SYS_ADMIN"


def test_token_from_before_a_password_change_is_refused(standin: StandIn, sysadmin: Api) -> None:
    old = Api.login(standin.url, "sysadmin@thingsboard.org", SYSADMIN_PASSWORD)
    pair = old.post(
        "/api/auth/changePassword",
        json={"currentPassword": SYSADMIN_PASSWORD, "newPassword": "Temporary-2"},
    )
    old.get("/api/auth/user", expect=401)
    fresh = Api(standin.url, pair["token"])
    fresh.post(
        "/api/auth/changePassword",
        json={"currentPassword": "Temporary-2", "newPassword": SYSADMIN_PASSWORD},
    )
    sysadmin.token = Api.login(standin.url, "sysadmin@thingsboard.org", SYSADMIN_PASSWORD).token


def test_missing_or_bad_token_is_401(standin: StandIn) -> None:
    Api(standin.url).get("/api/auth/user", expect=401)
    Api(standin.url, "not-a-jwt").get("/api/tenant/devices?pageSize=1&page=0", expect=401)


def test_demo_tenant_admin_exists(standin: StandIn) -> None:
    demo = Api.login(standin.url, "tenant@thingsboard.org", "tenant")
    assert demo.get("/api/auth/user")["authority"] == "TENANT_ADMIN"


def test_tenant_admin_is_activated_without_mail(tenant_admin: Api, sysadmin: Api) -> None:
    me = tenant_admin.get("/api/auth/user")
    assert me["email"] == "ops@tinyml.lab"
    page = sysadmin.get("/api/tenants", params={"pageSize": 10, "page": 0, "textSearch": "tinyml"})
    assert [t["title"] for t in page["data"]] == ["TinyML"]
    users = sysadmin.get(
        f"/api/tenant/{me['tenantId']['id']}/users", params={"pageSize": 10, "page": 0}
    )
    assert users["totalElements"] == 1


def test_authorities_are_enforced(tenant_admin: Api, sysadmin: Api) -> None:
    tenant_admin.get("/api/tenants", params={"pageSize": 10, "page": 0}, expect=403)
    sysadmin.get("/api/tenant/devices", params={"pageSize": 10, "page": 0}, expect=403)

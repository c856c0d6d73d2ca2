#!/usr/bin/python
"""Ansible module: ensure a ThingsBoard tenant and its tenant administrator."""

from __future__ import annotations

DOCUMENTATION = r"""
module: tb_tenant
short_description: Ensure a ThingsBoard tenant and a tenant administrator
description:
  - As the system administrator (O(username)), finds the tenant by title and creates it when
    absent, then finds its administrator by e-mail and creates it when absent.
  - A new administrator gets O(admin_password) through ThingsBoard's activation flow
    (C(GET /api/user/{id}/activationLink), C(POST /api/noauth/activate)), so no mail server
    is needed. The password of an existing administrator is left alone (use M(tb_password)).
options:
  username:
    description: System administrator.
    type: str
    required: true
  password:
    description: System administrator's password.
    type: str
    required: true
  title:
    description: Tenant title.
    type: str
    required: true
  admin_email:
    description: E-mail (login) of the tenant administrator.
    type: str
    required: true
  admin_password:
    description: Password given to the administrator when it is created.
    type: str
    required: true
notes:
  - Supports check mode.
extends_documentation_fragment:
  - tb_connection
"""

EXAMPLES = r"""
- name: Ensure the fleet's tenant
  tb_tenant:
    url: http://127.0.0.1:8080
    username: sysadmin@thingsboard.org
    password: "{{ thingsboard_sysadmin_password }}"
    title: TinyML fleet
    admin_email: fleet-admin@example.com
    admin_password: "{{ thingsboard_tenant_admin_password }}"
  no_log: true
"""

RETURN = r"""
tenant_id:
  description: The tenant's UUID (empty in check mode when it would be created).
  type: str
  returned: always
admin_user_id:
  description: The administrator's UUID (empty in check mode when it would be created).
  type: str
  returned: always
requests:
  description: HTTP requests sent.
  type: int
  returned: always
"""

from typing import Any  # noqa: E402
from urllib.parse import parse_qs, urlparse  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.tb_api import (  # noqa: E402
    TbClient,
    TbError,
    client_from_params,
    common_argument_spec,
    entity_id,
)


def find_tenant(client: TbClient, title: str) -> dict[str, Any] | None:
    for tenant in client.get_all("/api/tenants", {"textSearch": title}):
        if tenant.get("title") == title:
            found: dict[str, Any] = tenant
            return found
    return None


def find_user(client: TbClient, tenant_id: str, email: str) -> dict[str, Any] | None:
    for user in client.get_all(f"/api/tenant/{tenant_id}/users", {"textSearch": email}):
        if str(user.get("email", "")).lower() == email.lower():
            found: dict[str, Any] = user
            return found
    return None


def create_admin(client: TbClient, tenant_id: str, email: str, password: str) -> str:
    user = client.post(
        "/api/user",
        {
            "email": email,
            "authority": "TENANT_ADMIN",
            "tenantId": {"entityType": "TENANT", "id": tenant_id},
        },
        query={"sendActivationMail": False},
    )
    user_id: str = entity_id(user)
    link = client.get(f"/api/user/{user_id}/activationLink")
    token = parse_qs(urlparse(str(link)).query)["activateToken"][0]
    client.request(
        "POST",
        "/api/noauth/activate",
        body={"activateToken": token, "password": password},
        query={"sendActivationMail": False},
        authenticated=False,
    )
    return user_id


def main() -> None:
    spec = common_argument_spec()
    spec.update(
        title={"type": "str", "required": True},
        admin_email={"type": "str", "required": True},
        admin_password={"type": "str", "required": True, "no_log": True},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    params = module.params
    client = client_from_params(params)
    changed = False
    tenant_id = admin_id = ""
    try:
        tenant = find_tenant(client, params["title"])
        if tenant is None:
            changed = True
            if not module.check_mode:
                tenant_id = entity_id(client.post("/api/tenant", {"title": params["title"]}))
        else:
            tenant_id = entity_id(tenant)
        user = find_user(client, tenant_id, params["admin_email"]) if tenant_id else None
        if user is None:
            changed = True
            if not module.check_mode:
                admin_id = create_admin(
                    client, tenant_id, params["admin_email"], params["admin_password"]
                )
        else:
            admin_id = entity_id(user)
    except (TbError, KeyError) as error:
        module.fail_json(msg=f"tenant {params['title']}: {error}", requests=client.requests)
    module.exit_json(
        changed=changed, tenant_id=tenant_id, admin_user_id=admin_id, requests=client.requests
    )


if __name__ == "__main__":
    main()

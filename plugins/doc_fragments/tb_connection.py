"""Documentation of the connection options shared by the tb_* modules."""

from __future__ import annotations


class ModuleDocFragment:
    # module_utils/tb_api.common_argument_spec
    DOCUMENTATION = r"""
options:
  url:
    description: Base URL of ThingsBoard.
    type: str
    required: true
  username:
    description: Tenant administrator.
    type: str
    required: true
  password:
    description: Tenant administrator's password.
    type: str
    required: true
  validate_certs:
    description: Verify TLS certificates.
    type: bool
    default: true
  timeout:
    description: Seconds per request.
    type: float
    default: 60
"""

    # module_utils/tb_fleet.fleet_argument_spec: the bulk modules
    FLEET = r"""
options:
  retries:
    description: Retries of a request answered 429 or 5xx or not answered (capped backoff).
    type: int
    default: 4
  token:
    description:
      - A JWT from an earlier login; the module then sends no login of its own and logs in
        with O(username) and O(password) only when ThingsBoard refuses it (401).
    type: str
"""

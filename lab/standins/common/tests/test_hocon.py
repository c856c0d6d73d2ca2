from __future__ import annotations

import pytest

from lab.standins.common import hocon


def test_env_style_values() -> None:
    assert hocon.parse_value(
        "[{mechanism=password_based, backend=built_in_database, user_id_type=username}]"
    ) == [
        {"mechanism": "password_based", "backend": "built_in_database", "user_id_type": "username"}
    ]
    assert hocon.parse_value('["emqx@a.b", emqx@c.d]') == ["emqx@a.b", "emqx@c.d"]
    assert hocon.parse_value("8883") == 8883
    assert hocon.parse_value("false") is False
    assert hocon.parse_value('"0.0.0.0:1883"') == "0.0.0.0:1883"


def test_document_with_comments_dotted_keys_and_merging() -> None:
    text = """
    # comment
    node { name = "emqx@127.0.0.1", cookie = x }  // trailing
    node.data_dir = data
    listeners.ssl.default {
        bind = 8883 ## inline comment
        ssl_options { versions = [tlsv1.3, tlsv1.2] }
    }
    msg = \"\"\"multi
    line\"\"\"
    """
    doc = hocon.loads(text)
    assert doc["node"] == {"name": "emqx@127.0.0.1", "cookie": "x", "data_dir": "data"}
    assert doc["listeners"]["ssl"]["default"]["ssl_options"]["versions"] == ["tlsv1.3", "tlsv1.2"]
    assert "listeners.ssl.default.bind" in hocon.key_paths(doc)


def test_bad_text_is_an_error() -> None:
    with pytest.raises(hocon.HoconError):
        hocon.loads("a = [1, 2")
    with pytest.raises(hocon.HoconError):
        hocon.parse_value("0.0.0.0:1883")

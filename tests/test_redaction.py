"""The redaction rules on their own: names by word parts and structure, values by shape, source by context."""

from __future__ import annotations

import ast

import pytest

from jupyter_tracking.secret_filter import (
    is_secret_name, is_secret_param, long_value, name_words, redact_source, redact_tags, redact_text,
)
from tests import secrets_corpus as corpus


@pytest.mark.parametrize("name", corpus.CREDENTIAL_NAMES + ["headers.Authorization", "x-api-key", "cfg.db.password",
                                                            "APIKey", "openaiApiKey", "args.openai_key"])
def test_credential_names(name):
    assert is_secret_name(name), name_words(name)


@pytest.mark.parametrize("name", list(corpus.LOOKALIKES))
def test_lookalike_names_and_values_are_kept(name):
    value = corpus.LOOKALIKES[name]
    assert not is_secret_param(name, value if isinstance(value, (str, int, float, bool)) else str(value))


def test_word_parts():
    assert name_words("decoder_start_token_id") == ["decoder", "start", "token", "id"]
    assert name_words("openaiApiKey") == ["openai", "api", "key"]
    assert name_words("APIKey") == ["api", "key"]
    assert name_words("x-api-key.v2") == ["x", "api", "key", "v", "2"]


def test_weak_names_need_a_random_value():
    assert is_secret_param("key", "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3")
    assert not is_secret_param("key", "created_at") and not is_secret_param("signature", "(x: int) -> int")
    assert not is_secret_param("use_auth", True) and not is_secret_param("password_required", False)


@pytest.mark.parametrize("value, canary", corpus.VALUED)
def test_credential_values_in_free_text(value, canary):
    assert canary not in redact_text(f"note: deployed with {value} today")


def test_harmless_free_text_is_unchanged():
    for text in ["tuning max_new_tokens=512 with sk-learn-random-forest", "Basic authentication works",
                 "Token Classification head", "see https://huggingface.co/bert-base-uncased?revision=main",
                 "author: Jane Doe", "auth_timeout_s=30, n_auth_retries=3", "git sha a94a8fe5ccb19ba61c4c"]:
        assert redact_text(text) == text


def test_redacted_source_is_still_the_same_python():
    source = corpus.tracked_cell_source()
    redacted = redact_source(source)
    before, after = ast.parse(source), ast.parse(redacted)

    def shape(tree):  # the statements and what they bind (literal contents may change, f-strings become plain)
        return [(type(s).__name__, ast.dump(s.targets[0]) if isinstance(s, ast.Assign) else "") for s in tree.body]

    assert shape(before) == shape(after)
    assert "os.environ" not in redacted or '"OPENAI_API_KEY"' in redacted
    assert redact_source('key = os.environ["OPENAI_API_KEY"]\n') == 'key = os.environ["OPENAI_API_KEY"]\n'
    assert redact_source("token = get_token()\nlr = 'x'\n") == "token = get_token()\nlr = 'x'\n"


def test_unterminated_strings_and_odd_source_do_not_break_redaction():
    for source in ["x = '''never closed\npassword = 'a'", "password = 'unterminated\nlr = 1", "%time x = 1\n!ls",
                   "f(password=\"pw\" 'x'", ""]:
        assert isinstance(redact_source(source), str)
    assert "hunter" not in redact_source("password = 'hunter22\nlr = 1")


def test_tags_drop_credential_keys_and_redact_values():
    kept, dropped = redact_tags({"api_token": "x", "remark": "ghp_" + "a1" * 18, "mlflow.note.content": "pw=abc12345"})
    assert dropped == ["api_token"] and kept["remark"] == "***" and "abc12345" not in kept["mlflow.note.content"]


def test_long_values_keep_only_their_scanned_head():
    value = "x" * 10_000_000 + "ghp_" + "a1" * 18
    head = long_value(value)
    assert len(head) <= 7100 and "ghp_" not in head
    assert "ghp_" not in long_value("y" * 6990 + " ghp_" + "a1" * 18)  # cut through by the head: still caught

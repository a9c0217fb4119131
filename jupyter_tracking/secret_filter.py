"""Redaction: nothing that looks like a credential leaves the kernel (params, tags, notes, names, source, text).

Three kinds of rules, all linear in the length of what they look at:

- Names (``is_secret_name``). A name is split into word parts (snake, camel, kebab, dotted: ``DB_PASSWORD``,
  ``openaiApiKey``, ``x-api-key``, ``headers.Authorization``). Credential words (password, secret, token,
  auth, cookie, dsn, ``api key``, ``session id``, ``conn str``, ...) make it secret, unless the structure says it
  counts or configures something: a count word before (``max_new_tokens``, ``n_auth_retries``), a measure or
  reference word after (``token_budget``, ``auth_timeout_s``, ``secret_name``), a text-token kind before
  ``token`` (``pad_token``, ``decoder_start_token_id``), or the plural ``tokens``. Weak words (``key``,
  ``signature``) make a name secret only when its value looks random.
- Values (``secret_spans``): known token prefixes (``ghp_``, ``AKIA``, ``sk-proj-``...; ``sk-`` only when the
  rest looks random, so ``sk-learn-random-forest`` is kept), ``user:pass@`` in URLs, credential query
  parameters (``?api_key=``, ``&sig=``), ``NAME=value`` / ``NAME: value`` where NAME is a credential name
  (connection strings: ``AccountKey=``, ``Password=``, ``pwd=``), ``Bearer`` tokens, PEM blocks, JWTs, and
  every value this session already withheld (``remember_secret``).
- Source (``redact_source``): a lexer walks the cell and blanks string literals assigned to credential
  names: assignments, annotated assignments, keyword arguments, dict entries (quoted keys too), subscript
  assignments, f-strings. The code stays valid Python (``api_key = "***"``); value rules run on every
  literal and comment.

Values longer than ``MAX_PARAM_SCAN`` are never scanned whole as params: only their head, which is all
that is kept (``long_value``).
"""

from __future__ import annotations

import functools
import math
import re
from collections import OrderedDict
from typing import Any

REDACTED = "***"
MAX_PARAM_SCAN = 6000  # of a longer param value only the head is scanned (and kept)
MAX_NAME = 200  # only the last 200 characters of a name are looked at
_MAX_REMEMBERED = 256
_MIN_REMEMBERED = 6
_LONGEST_MATCH = 20_000  # no value rule matches more characters than this (every quantifier is bounded)

# ----------------------------------------------------------------------------------------------- names
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")

# Words that are a credential on their own.
_STRONG = {
    "password", "passwd", "passphrase", "passcode", "pwd", "secret", "secrets", "credential", "credentials",
    "creds", "cookie", "cookies", "bearer", "dsn", "webhook", "webhooks", "sas", "jwt", "privkey", "apikey",
    "apikeys", "apitoken", "accesstoken", "authtoken", "secretkey", "accesskey", "privatekey", "sessionid",
    "sessionkey", "sessiontoken", "connstr", "connectionstring", "clientsecret", "token", "auth",
    "authorization", "authentication", "xsrf", "csrf",
}
# Words that are never harmless by what follows them (``webhook_url`` is the secret itself).
_ALWAYS = {"webhook", "webhooks", "dsn", "sas"}
# ``key`` is a credential after one of these (``api_key``, ``AWS_SECRET_ACCESS_KEY``, ``openaiKey``).
_KEY_QUALIFIERS = {
    "api", "access", "private", "secret", "account", "storage", "session", "signing", "encryption", "master",
    "ssh", "client", "app", "license", "licence", "auth", "db", "database", "service", "subscription", "shared",
    "sas", "hmac", "fernet", "jwt", "gpg", "pgp", "ssl", "tls", "rsa", "ed", "consumer", "user", "admin",
    "openai", "aws", "azure", "gcp", "google", "hf", "huggingface", "wandb", "comet", "neptune", "stripe",
    "slack", "github", "gitlab", "anthropic", "cohere", "mistral", "groq", "replicate", "pinecone", "sendgrid",
    "twilio", "mailgun", "together", "perplexity", "deepseek", "voyage", "serp", "serpapi", "tavily", "langchain",
    "langsmith", "qdrant", "weaviate", "elastic", "datadog", "sentry", "kaggle", "dropbox", "firebase", "minio",
}
# ``pass`` is a password after one of these (``db_pass``, ``SMTP_PASS``).
_PASS_QUALIFIERS = {"db", "user", "admin", "root", "smtp", "mail", "email", "ftp", "redis", "mysql", "postgres",
                    "pg", "ldap", "proxy", "basic", "http", "wifi", "login", "my", "account"}
# Words that make a name secret only when its value looks random.
_WEAK = {"key", "keys", "signature", "sig", "hmac", "salt", "nonce", "license", "licence", "fingerprint"}
# Before a credential word: it is counted or switched, not held (``max_new_tokens``, ``n_auth_retries``).
_COUNT_WORDS = {"max", "min", "num", "n", "nb", "total", "count", "use", "no", "enable", "disable", "require",
                "requires", "skip", "with", "without", "has", "is"}
# Before ``token``: the kind of text token a model uses (``pad_token``, ``decoder_start_token_id``).
_TOKEN_KINDS = {
    "new", "vocab", "special", "pad", "bos", "eos", "unk", "sep", "cls", "mask", "start", "end", "decoder",
    "encoder", "image", "passage", "prompt", "completion", "input", "output", "generated", "gen", "context",
    "text", "visual", "vision", "audio", "video", "query", "doc", "document", "sentence", "word", "sub",
    "subword", "extra", "additional", "reserved", "placeholder", "added", "eot", "im", "think", "tool",
    "system", "assistant", "answer", "question", "first", "last", "next", "prev", "previous", "stop",
    "begin", "boundary", "label", "target", "source", "src", "tgt", "chat", "role", "frame", "patch", "speech",
    "byte", "char", "character", "sample", "masked", "special", "mlm", "fim", "middle", "prefix", "suffix",
}
# After a credential word: it describes or measures it (``token_budget``, ``auth_timeout_s``, ``secret_name``).
_SUFFIX_HARMLESS = {
    "name", "names", "file", "filename", "files", "path", "paths", "dir", "len", "length", "lengths", "min", "max",
    "size", "sizes", "count", "counts", "timeout", "timeouts", "ttl", "expiry", "expires", "lifetime", "retries",
    "retry", "attempts", "enabled", "disabled", "required", "type", "types", "method", "methods", "mode",
    "policy", "scheme", "backend", "format", "prefix", "version", "level", "levels", "dim", "dims", "budget",
    "budgets", "limit", "limits", "per", "rate", "rates", "s", "ms", "sec", "secs", "seconds", "id", "ids",
    "index", "indices", "idx", "embedding", "embeddings", "emb", "embed", "position", "positions", "pos",
    "usage", "field", "column", "col", "env", "var", "arn", "strategy", "strength", "rotation", "provider",
    "url", "uri", "endpoint", "host", "port", "server", "domain", "dropout", "weight", "weights", "loss",
    "logits", "probs", "prob", "threshold", "ratio", "mixing", "classification", "accuracy", "acc", "share",
    "fraction", "frac", "entropy", "norm", "bias", "layer", "layers", "head", "heads", "window", "stride",
    "overlap", "interval", "bucket", "buckets", "shape", "step", "steps", "rank", "pool", "pooling",
}


def name_words(name: str) -> list[str]:
    """Word parts of a name, lower-case: ``decoder_start_token_id`` -> decoder, start, token, id."""
    return [word.lower() for word in _WORD.findall(str(name)[-MAX_NAME:])]


def _credential_at(words: list[str], index: int) -> str | None:
    """"strong", "weak" or None: what the word at ``index`` says about the name."""
    word = words[index]
    before = words[index - 1] if index else ""
    after = words[index + 1] if index + 1 < len(words) else ""
    if word in _ALWAYS:
        return "strong"
    if word == "key" and before in _KEY_QUALIFIERS:
        kind = "strong"
    elif word in ("pass", "pw") and not after and (before in _PASS_QUALIFIERS or word == "pw"):
        kind = "strong"
    elif word in ("id", "key", "token", "cookie", "secret") and before == "session":
        kind = "strong"
    elif word in ("str", "string", "url", "uri") and before in ("conn", "connection"):
        return "strong"
    elif word == "tokens":
        kind = "strong" if before in _KEY_QUALIFIERS or before in ("refresh", "bearer", "oauth") else None
    elif word in _STRONG:
        kind = "strong"
    elif word in _WEAK:
        kind = "weak"
    else:
        return None
    if kind is None:
        return None
    if after in _SUFFIX_HARMLESS or before in _COUNT_WORDS:
        return None
    if word == "token" and before in _TOKEN_KINDS:
        return None
    return kind


@functools.lru_cache(maxsize=8192)
def name_strength(name: str) -> str | None:
    """"strong" (a credential name), "weak" (secret only with a random-looking value) or None."""
    words = name_words(name)
    found = None
    for index in range(len(words)):
        kind = _credential_at(words, index)
        if kind == "strong":
            return "strong"
        found = found or kind
    return found


def is_secret_name(name: str) -> bool:
    """True for names that hold a credential whatever their value (``api_key``, ``DB_PASSWORD``, ``dsn``)."""
    return name_strength(name) == "strong"


# ----------------------------------------------------------------------------------------------- values
def looks_random(text: str) -> bool:
    """A key-like string: 16+ characters without spaces, letters and digits mixed, high character entropy."""
    if not 16 <= len(text) <= 4096 or any(ch.isspace() for ch in text):
        return False
    has_digit = any(ch.isdigit() for ch in text)
    has_alpha = any(ch.isalpha() for ch in text)
    if not (has_digit and has_alpha):
        return False
    counts: dict[str, int] = {}
    for ch in text:
        counts[ch] = counts.get(ch, 0) + 1
    entropy = -sum(c / len(text) * math.log2(c / len(text)) for c in counts.values())
    return entropy >= 3.0


_LONGEST_ALNUM_RUN = re.compile(r"[A-Za-z0-9]{12,}")


def _random_body(body: str) -> bool:
    """The part after ``sk-``: a long run mixing letters and digits (not ``learn-random-forest``)."""
    for match in _LONGEST_ALNUM_RUN.finditer(body):
        run = match.group(0)
        if any(ch.isdigit() for ch in run) and any(ch.isalpha() for ch in run):
            return True
    return False


# Every quantifier is bounded, so a failed attempt costs a constant, whatever the text.
_PREFIXED = re.compile(
    r"(?<![A-Za-z0-9_])(?:"
    r"gh[pousr]_[A-Za-z0-9]{30,255}|github_pat_[A-Za-z0-9_]{30,255}|glpat-[A-Za-z0-9_\-]{20,255}"
    r"|xox[abposr]-[A-Za-z0-9\-]{10,255}|xapp-[A-Za-z0-9\-]{10,255}"
    r"|(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16}"
    r"|AIza[0-9A-Za-z_\-]{35}|ya29\.[0-9A-Za-z_\-]{20,2048}"
    r"|hf_[A-Za-z0-9]{30,255}|api_org_[A-Za-z0-9]{30,255}"
    r"|(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,255}|whsec_[A-Za-z0-9]{16,255}"
    r"|npm_[A-Za-z0-9]{36}|pypi-AgE[A-Za-z0-9_\-]{20,2048}|dop_v1_[a-f0-9]{64}|shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}"
    r"|SG\.[A-Za-z0-9_\-]{16,255}\.[A-Za-z0-9_\-]{16,255}|key-[0-9a-f]{32}|dapi[0-9a-f]{32}"
    r"|lin_api_[A-Za-z0-9]{32,255}|figd_[A-Za-z0-9_\-]{32,255}|gsk_[A-Za-z0-9]{32,255}|r8_[A-Za-z0-9]{30,255}"
    r"|pcsk_[A-Za-z0-9_]{30,255}|tvly-[A-Za-z0-9\-]{20,255}|lsv2_[A-Za-z0-9_]{30,255}|nvapi-[A-Za-z0-9_\-]{30,255}"
    r"|eyJ[A-Za-z0-9_\-]{8,4096}\.eyJ[A-Za-z0-9_\-]{8,8192}\.[A-Za-z0-9_\-]{8,4096}"
    r")"
)
_SK = re.compile(r"(?<![A-Za-z0-9_])sk-(proj-|ant-(?:api\d\d-|admin\d\d-)?|svcacct-|admin-)?([A-Za-z0-9_\-]{16,512})")
_URL_USERINFO = re.compile(r"://([^\s/?#@:'\"<>]{0,256}):([^\s/?#@'\"<>]{1,512})@")
_URL_TOKEN_USER = re.compile(r"://([^\s/?#@:'\"<>]{16,256})@")
_QUERY_PARAM = re.compile(r"[?&;]([A-Za-z_][\w.\-]{0,63})=([^&#\s'\"<>;]{1,2048})")
_QUERY_ALWAYS = {"sig", "signature", "key", "apikey", "api_key", "access_token", "token", "password", "pwd",
                 "secret", "client_secret", "code_verifier", "x-amz-signature", "x-amz-security-token",
                 "x-goog-signature", "auth", "passwd"}
_KEY_VALUE = re.compile(
    r"(?<![\w.\-])([A-Za-z_][\w.\-]{0,63})[\"']?[ \t]{0,3}(?:=|:(?!//))[ \t]{0,3}"
    r"(?:\"([^\"\n]{1,1024})\"|'([^'\n]{1,1024})'|([^\s;,&'\"\])}]{1,1024}))"
)
_AUTH_SCHEME = re.compile(r"(?<![\w])(?:[Bb]earer|[Bb]asic|[Tt]oken|Digest)[ \t]{1,3}([A-Za-z0-9\-._~+/]{8,4096}=*)")
_AUTH_WORDS = {"bearer", "basic", "token", "digest"}
_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY( BLOCK)?-----")
_PEM_END = re.compile(r"-----END [A-Z0-9 ]{0,40}PRIVATE KEY( BLOCK)?-----")


class RememberedSecrets:
    """Values withheld earlier in this session (in memory only): never written anywhere later either."""

    def __init__(self) -> None:
        self.values: OrderedDict[str, None] = OrderedDict()
        self.pattern: re.Pattern | None = None

    def add(self, value: Any) -> None:
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            return
        text = str(value).strip()
        if len(text) < _MIN_REMEMBERED or len(text) > MAX_PARAM_SCAN or text in self.values:
            return
        self.values[text] = None
        while len(self.values) > _MAX_REMEMBERED:
            self.values.popitem(last=False)
        ordered = sorted(self.values, key=len, reverse=True)
        self.pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def clear(self) -> None:
        self.values.clear()
        self.pattern = None


def _remembered() -> RememberedSecrets:
    from .session import current_session

    return current_session().withheld_values


def remember_secret(value: Any) -> None:
    """Remember a withheld value, so that it is redacted wherever it shows up later (tracebacks, notes)."""
    _remembered().add(value)


def forget_remembered_secrets() -> None:
    _remembered().clear()


def secret_spans(text: str) -> list[tuple[int, int]]:
    """Sorted, merged ``(start, end)`` spans of ``text`` that hold a credential."""
    spans: list[tuple[int, int]] = []
    for match in _PREFIXED.finditer(text):
        spans.append(match.span())
    for match in _SK.finditer(text):  # bare `sk-` only when random-looking: `sk-learn-random-forest` is a name
        if match.group(1) or _random_body(match.group(2)):
            spans.append(match.span())
    for match in _URL_USERINFO.finditer(text):
        spans.append(match.span(2))
    for match in _URL_TOKEN_USER.finditer(text):
        if looks_random(match.group(1)):
            spans.append(match.span(1))
    for match in _QUERY_PARAM.finditer(text):
        name = match.group(1)
        if name.lower() in _QUERY_ALWAYS or is_secret_name(name):
            spans.append(match.span(2))
    for match in _AUTH_SCHEME.finditer(text):  # "Bearer <token>", not "Basic authentication"
        value = match.group(1)
        mixed = any(ch.isupper() for ch in value) and any(ch.islower() for ch in value)
        if (any(ch.isdigit() for ch in value) or len(value) >= 20 or "=" in value
                or (mixed and match.group(0)[0] not in "Tt")):
            spans.append(match.span(1))
    for match in _KEY_VALUE.finditer(text):
        group = 2 if match.group(2) is not None else 3 if match.group(3) is not None else 4
        value = match.group(group)
        strength = name_strength(match.group(1)[-MAX_NAME:])
        if value.lower() in _AUTH_WORDS or value in ("None", "null", "True", "False", "true", "false", REDACTED):
            continue
        if strength == "strong" or (strength == "weak" and looks_random(value)):
            spans.append(match.span(group))
    position = 0
    while True:
        begin = _PEM_BEGIN.search(text, position)
        if begin is None:
            break
        end = _PEM_END.search(text, begin.end())
        stop = end.end() if end is not None else len(text)
        spans.append((begin.start(), stop))
        position = stop
    remembered = _remembered()
    if remembered.pattern is not None and remembered.values:
        for match in remembered.pattern.finditer(text):
            spans.append(match.span())
    if not spans:
        return []
    spans.sort()
    merged = [spans[0]]
    for start, end in spans[1:]:
        if start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def is_secret_value(value: object) -> bool:
    """True for a string that holds a token, a private key, a URL password or a known withheld value.

    Strings longer than MAX_PARAM_SCAN are not looked at here (callers keep only their head: ``long_value``).
    """
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str) or len(value) < _MIN_REMEMBERED or len(value) > MAX_PARAM_SCAN:
        return False
    return bool(secret_spans(value))


def is_secret_param(name: str, value: Any) -> bool:
    """Whether a param ``name`` = ``value`` (its text, or the object) must be withheld.

    Booleans and None never hold a credential (``use_auth=True`` is kept); a weak name (``key``,
    ``signature``) is withheld only with a random-looking value.
    """
    if value is None or isinstance(value, bool):
        return False
    strength = name_strength(name)
    if strength == "strong":
        return True
    text = value if isinstance(value, str) else str(value) if isinstance(value, (int, float)) else None
    if text is None:
        return False
    if strength == "weak" and looks_random(text):
        return True
    return is_secret_value(text)


def redact_text(text: str) -> str:
    """``text`` with every credential span replaced by ``***`` (free text: notes, tags, tracebacks, names)."""
    if not text:
        return text
    spans = secret_spans(text)
    if not spans:
        return text
    parts = []
    position = 0
    for start, end in spans:
        parts.append(text[position:start])
        parts.append(REDACTED)
        position = end
    parts.append(text[position:])
    return "".join(parts)


def long_value(text: str) -> str:
    """A string too long to be a param: only its head is looked at (and kept; MLflow's limit cuts the rest).

    The head is redacted in place, so the cost is bounded whatever the length (a 10 MB string costs the same
    as a 7 kB one).
    """
    # Scanned further than kept, so that a credential cut by the end of the head is still recognised whole.
    return redact_text(text[: MAX_PARAM_SCAN + _LONGEST_MATCH])[: MAX_PARAM_SCAN + 1024]


def redact_tags(tags: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """Tags with credential-named keys dropped and credential spans in values redacted; returns the dropped."""
    kept: dict[str, str] = {}
    dropped: list[str] = []
    for key, value in tags.items():
        key = str(key)
        if not key.startswith(("mlflow.", "jupyter_tracking.")) and is_secret_name(key):
            dropped.append(key)
            continue
        kept[key] = redact_text(str(value))
    return kept, dropped


# ----------------------------------------------------------------------------------------------- source
_TOKEN = re.compile(
    r"(?P<string>(?P<prefix>[rRbBuUfF]{0,2})(?P<quote>'''|\"\"\"|'|\"))"
    r"|(?P<comment>#[^\n]*)"
    r"|(?P<name>[^\W\d]\w*)"
    r"|(?P<number>\d[\w.]*)"
    r"|(?P<newline>\n)"
    r"|(?P<space>[ \t\r\f\\]+)"
    r"|(?P<op>:=|==|!=|<=|>=|->|[-+*/%@&|^<>]=|\*\*=|//=|[()\[\]{},:;=.])"
    r"|(?P<other>.)",
    re.DOTALL,
)
_SINGLE_BODY = {"'": re.compile(r"(?:[^'\\\n]|\\.)*'", re.DOTALL), '"': re.compile(r'(?:[^"\\\n]|\\.)*"', re.DOTALL)}
_OPEN, _CLOSE = "([{", ")]}"
_ENV_NAME = re.compile(r"[A-Z][A-Z0-9_]{1,63}")


def _end_of_triple(text: str, start: int, quote: str) -> int:
    """Index just past the closing triple quote (or the end of the text if it never closes)."""
    position = start
    while True:
        found = text.find(quote, position)
        if found < 0:
            return len(text)
        backslashes = 0
        while found - 1 - backslashes >= start and text[found - 1 - backslashes] == "\\":
            backslashes += 1
        if backslashes % 2 == 0:
            return found + 3
        position = found + 1


def _lex(source: str) -> list[tuple[str, int, int, int, int]]:
    """Tokens ``(kind, start, end, body_start, body_end)``; strings carry their contents' bounds."""
    tokens = []
    position, length = 0, len(source)
    while position < length:
        match = _TOKEN.match(source, position)
        kind = match.lastgroup if match.lastgroup != "prefix" and match.lastgroup != "quote" else "string"
        if match.group("string") is not None:
            quote = match.group("quote")
            body_start = match.end()
            if len(quote) == 3:
                end = _end_of_triple(source, body_start, quote)
                body_end = end - 3 if end <= length and source[end - 3:end] == quote else end
            else:
                closing = _SINGLE_BODY[quote].match(source, body_start)
                if closing is None:  # unterminated: up to the end of the line
                    newline = source.find("\n", body_start)
                    end = body_end = length if newline < 0 else newline
                else:
                    end, body_end = closing.end(), closing.end() - 1
            tokens.append(("string", match.start(), end, body_start, body_end))
            position = end
            continue
        tokens.append((kind, match.start(), match.end(), match.start(), match.end()))
        position = match.end()
    return tokens


def redact_source(source: str) -> str:
    """Cell source with string literals assigned to credential names blanked and value rules applied.

    ``api_key = "sk-..."``, ``password: str = "..."``, ``connect(password="...")``, ``{"db": {"password":
    "..."}}``, ``cfg["token"] = "..."``, ``headers = {"Authorization": f"Bearer {t}"}`` become ``"***"``;
    ``os.environ["OPENAI_API_KEY"]`` keeps its variable name. Comments and every literal get ``redact_text``.
    """
    if not source:
        return source
    tokens = [t for t in _lex(source) if t[0] not in ("space",)]
    replacements: list[tuple[int, int, str]] = []
    depth = 0
    last_key: str | None = None  # the name or literal a following `=` / `:` would assign to
    value_depth: int | None = None  # inside the value of a credential name, opened at this depth
    value_kind = ""
    for index, (kind, start, end, body_start, body_end) in enumerate(tokens):
        text = source[start:end]
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        if kind == "string":
            body = source[body_start:body_end]
            is_dict_key = following is not None and source[following[1]:following[2]] == ":" and depth > 0
            if value_depth is not None and not is_dict_key and body:
                env_name = depth > value_depth and _ENV_NAME.fullmatch(body)
                if not env_name:
                    replacements.append((body_start, body_end, REDACTED))
                    continue
            redacted = redact_text(body)
            if redacted != body:
                replacements.append((body_start, body_end, redacted))
            last_key = body if len(body) <= 64 else None
            continue
        if kind == "comment":
            redacted = redact_text(text)
            if redacted != text:
                replacements.append((start, end, redacted))
            continue
        if kind == "name":
            if value_depth is None:
                last_key = text
            continue
        if kind in ("number", "other"):
            continue
        # newline and operators
        if kind == "newline":
            if value_depth is not None and depth <= value_depth and (value_kind == "stmt" or depth == 0):
                value_depth = None
            if depth == 0:
                last_key = None
            continue
        if text in _OPEN:
            depth += 1
            last_key = None if text != "[" else last_key
            continue
        if text in _CLOSE:
            depth = max(0, depth - 1)
            if value_depth is not None and depth < value_depth:
                value_depth = None
            if text != "]":
                last_key = None
            continue
        if text in ("=", ":", ":="):
            if value_depth is None and last_key is not None and is_secret_name(last_key):
                value_depth = depth
                value_kind = "stmt" if depth == 0 else "item"
            last_key = None
            continue
        if text in (",", ";"):
            if value_depth is not None and depth == value_depth and (value_kind == "item" or text == ";"):
                value_depth = None
            last_key = None
            continue
        if text != ".":
            last_key = None
    if not replacements:
        return source
    parts = []
    position = 0
    for start, end, new in sorted(replacements):
        if start < position:
            continue
        parts.append(source[position:start])
        parts.append(new)
        position = end
    parts.append(source[position:])
    return "".join(parts)


def redact_params(params: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """Params without the credential ones (by name or value); returns them and the withheld names.

    Values longer than MAX_PARAM_SCAN: only their head is scanned and kept (``long_value``).
    """
    kept: dict[str, str] = {}
    withheld: list[str] = []
    for key, value in params.items():
        text = str(value)
        if is_secret_name(str(key)):
            withheld.append(str(key))
            remember_secret(text)
        elif len(text) > MAX_PARAM_SCAN:
            kept[key] = long_value(text)
        elif is_secret_param(str(key), text):
            withheld.append(str(key))
            remember_secret(text)
        else:
            kept[key] = text
    return kept, withheld

"""The credential corpus: credential shapes that must never be stored, and harmless look-alikes that must be.

Every credential carries a unique canary (its secret part); the leak test searches the raw bytes of the store,
the artifacts, the spool and every output for it. Look-alikes come from real ML code (LLM token counts,
tokenizer settings, authors, signatures, hashes, URLs) and must come back as params, unchanged.

Values are generated from a fixed seed: the same corpus every run, none of it a real credential.
"""

from __future__ import annotations

import random
import string

_random = random.Random(11)


def _chars(alphabet: str, length: int) -> str:
    return "".join(_random.choice(alphabet) for _ in range(length))


def _alnum(length: int) -> str:
    """Random letters and digits, at least one of each (as real keys have)."""
    text = _chars(string.ascii_letters + string.digits, length - 2)
    return text + _random.choice(string.ascii_letters) + _random.choice(string.digits)


def _hex(length: int) -> str:
    return _chars("0123456789abcdef", length)


def _b64url(length: int) -> str:
    return _alnum(length).replace("Q", "-").replace("q", "_")


def _plain(index: int) -> str:
    """A plain-looking secret (nothing about the value says "credential"): only the name gives it away."""
    words = ["maple", "harbor", "violet", "canyon", "ember", "falcon", "quartz", "meadow", "cobalt", "willow"]
    return f"{_random.choice(words)}{index:03d}{_random.choice(words)}"


# -------------------------------------------------------------------------- credentials recognised by name
CREDENTIAL_NAMES = [
    "api_key", "API_KEY", "openai_api_key", "OPENAI_API_KEY", "anthropic_api_key", "hf_token", "HF_TOKEN",
    "HUGGINGFACE_HUB_TOKEN", "github_token", "gitlab_token", "wandb_api_key", "WANDB_API_KEY", "comet_api_key",
    "neptune_api_token", "db_password", "DB_PASSWORD", "password", "passwd", "pwd", "passphrase",
    "ssh_passphrase", "secret", "client_secret", "app_secret", "secret_key", "SECRET_KEY",
    "aws_secret_access_key", "AWS_SECRET_ACCESS_KEY", "aws_session_token", "azure_storage_key", "account_key",
    "storage_account_key", "conn_str", "connection_string", "AZURE_STORAGE_CONNECTION_STRING", "dsn",
    "SENTRY_DSN", "webhook_url", "slack_webhook", "session_id", "sessionId", "session_cookie", "cookie",
    "auth_token", "authToken", "authorization", "Authorization", "bearer_token", "access_token",
    "refresh_token", "id_token", "jwt", "private_key", "privateKey", "signing_key", "encryption_key",
    "master_key", "mlflow_tracking_password", "MLFLOW_TRACKING_TOKEN", "kaggle_key", "pinecone_api_key",
    "redis_password", "smtp_pass", "db_pass", "ldap_password", "proxy_auth", "basic_auth", "http_auth",
    "author_password", "authorization_token", "credentials", "creds", "csrf_token", "sas_token", "x_api_key",
    "apiKey", "stripeKey", "apikey", "sessionid", "user_passcode", "gcp_credentials", "token",
]
NAMED = [(name, _plain(index)) for index, name in enumerate(CREDENTIAL_NAMES)]

# -------------------------------------------------------------------------- credentials recognised by value
_SHAPES = [
    "sk-proj-" + _b64url(120), "sk-" + _alnum(48), "sk-ant-api03-" + _b64url(93) + "AA", "sk-svcacct-" + _b64url(60),
    "ghp_" + _alnum(36), "gho_" + _alnum(36), "ghs_" + _alnum(36), "github_pat_" + _alnum(22) + "_" + _alnum(59),
    "glpat-" + _alnum(20), "xoxb-" + _chars(string.digits, 12) + "-" + _chars(string.digits, 13) + "-" + _alnum(24),
    "xoxp-" + _chars(string.digits, 12) + "-" + _alnum(30), "AKIA" + _chars(string.ascii_uppercase + string.digits, 16),
    "ASIA" + _chars(string.ascii_uppercase + string.digits, 16), "AIza" + _b64url(35), "ya29." + _b64url(80),
    "hf_" + _alnum(34), "sk_live_" + _alnum(24), "rk_live_" + _alnum(24), "whsec_" + _alnum(32), "npm_" + _alnum(36),
    "pypi-AgEIcHlwaS5vcmc" + _b64url(60), "SG." + _b64url(22) + "." + _b64url(43), "dop_v1_" + _hex(64),
    "shpat_" + _hex(32), "key-" + _hex(32), "dapi" + _hex(32), "lin_api_" + _alnum(40), "gsk_" + _alnum(52),
    "r8_" + _alnum(37), "tvly-" + _alnum(32), "lsv2_pt_" + _hex(32) + "_" + _hex(10), "nvapi-" + _b64url(64),
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI" + _b64url(40) + "." + _b64url(43),
    "-----BEGIN RSA PRIVATE KEY-----\n" + _alnum(64) + "\n" + _alnum(64) + "\n-----END RSA PRIVATE KEY-----",
    "-----BEGIN OPENSSH PRIVATE KEY-----\n" + _alnum(70) + "\n-----END OPENSSH PRIVATE KEY-----",
]
# (value, the part that must never be stored)
VALUED: list[tuple[str, str]] = [(shape, shape) for shape in _SHAPES]
for _template in [
    "postgresql://trainer:{}@db.internal:5432/runs", "mysql://root:{}@127.0.0.1/ml", "redis://:{}@cache:6379/0",
    "mongodb+srv://svc:{}@cluster0.example.net/db", "https://bob:{}@git.example.com/repo.git",
    "amqp://guest:{}@rabbit:5672/", "https://api.example.com/v1/models?api_key={}&limit=5",
    "https://acct.blob.core.windows.net/data?sv=2022-11-02&ss=b&sig={}",
    "https://graph.example.com/me?access_token={}", "https://maps.example.com/geo?key={}&q=paris",
    "DefaultEndpointsProtocol=https;AccountName=mldata;AccountKey={};EndpointSuffix=core.windows.net",
    "Server=tcp:sql.example.net,1433;Database=ml;User ID=trainer;Password={};Encrypt=yes;",
    "Driver={{ODBC Driver 18}};Server=db;UID=sa;PWD={};", "host=db port=5432 user=trainer password={} dbname=ml",
    "Endpoint=sb://bus.servicebus.windows.net/;SharedAccessKeyName=root;SharedAccessKey={}",
    "Bearer {}", "Authorization: Bearer {}",
]:
    _canary = _alnum(28)
    VALUED.append((_template.format(_canary), _canary))
VALUE_NAMES = [f"setting_{index:02d}" for index in range(len(VALUED))]

# -------------------------------------------------------------------------- nested configs (literal dicts)
NESTED_CANARIES = [_plain(200 + index) for index in range(8)]
NESTED_SOURCE = f'''config = {{"db": {{"host": "localhost", "password": "{NESTED_CANARIES[0]}"}}, "lr": 0.1}}
cfg = {{"openai": {{"api_key": "{NESTED_CANARIES[1]}", "model": "gpt-4o-mini"}}, "epochs": 3}}
headers = {{"Authorization": "Bearer {NESTED_CANARIES[2]}", "Accept": "application/json"}}
storage = {{"blob": {{"connection_string": "AccountName=x;AccountKey={NESTED_CANARIES[3]}"}}, "container": "runs"}}
env_vars = {{"HF_TOKEN": "{NESTED_CANARIES[4]}", "TRANSFORMERS_CACHE": "/cache"}}
trainer_args = Namespace(lr=0.01, hub_token="{NESTED_CANARIES[5]}", seed=7)
svc = SimpleNamespace(name="svc", credentials={{"user": "bob", "pass": "x", "secret": "{NESTED_CANARIES[6]}"}})
deep = {{"a": {{"b": {{"c": {{"db_password": "{NESTED_CANARIES[7]}", "depth": 4}}}}}}}}
'''

# -------------------------------------------------------------------------- literals only in the source
SOURCE_CANARIES = [_plain(300 + index) for index in range(11)]
SOURCE_ONLY = f'''_conn = _connect(host="db", password="{SOURCE_CANARIES[0]}", user="bob")
_h = {{"X-Api-Key": "{SOURCE_CANARIES[1]}"}}
_environ = {{}}
_environ["OPENAI_API_KEY"] = "{SOURCE_CANARIES[2]}"
_fn = lambda token="{SOURCE_CANARIES[3]}": token
def _login(api_key: str = "{SOURCE_CANARIES[4]}"):
    return api_key
class _Settings:
    secret_key: str = "{SOURCE_CANARIES[5]}"
# password: {SOURCE_CANARIES[6]}
_d = {{'password': '{SOURCE_CANARIES[7]}'}}
_auth = f"Bearer {{'{SOURCE_CANARIES[8]}'}}"
_pw = (
    "{SOURCE_CANARIES[9]}"
) if False else None
_client_secret = "{SOURCE_CANARIES[10]}"
'''

# -------------------------------------------------------------------------- tags, notes, run names
TAG_CANARIES = [_plain(400 + index) for index in range(3)] + [_alnum(36) for _ in range(3)]
TAG_ARGUMENTS = (f"-t webhook={TAG_CANARIES[0]} -t api_token={TAG_CANARIES[1]} "
                 f"-t db_url=postgresql://u:{TAG_CANARIES[2]}@h/db -t remark=ghp_{TAG_CANARIES[3]}")
NOTE_CANARY = _b64url(60)
NOTE = f"using key sk-proj-{NOTE_CANARY} for the eval"
RUN_NAME_CANARY = _alnum(36)
RUN_NAME = f"run-ghp_{RUN_NAME_CANARY}"
API_TAGS = {"api_token": TAG_CANARIES[4], "remark": f"deploy with hf_{TAG_CANARIES[5]}"}
API_NOTE_CANARY = _plain(450)
API_NOTE = f"password={API_NOTE_CANARY} (rotate)"

# -------------------------------------------------------------------------- tracebacks
TRACEBACK_CANARIES = [_plain(500), _alnum(36), _plain(502), _alnum(40)]
FAILING_CELL = f'''db_password_tb = "{TRACEBACK_CANARIES[0]}"
attempt = 1
if attempt:
    raise ValueError("login failed for " + db_password_tb + " with ghp_{TRACEBACK_CANARIES[1]}; "
                     "password={TRACEBACK_CANARIES[2]}; url=https://u:{TRACEBACK_CANARIES[3]}@h/x")
'''

# -------------------------------------------------------------------------- sweeps
SWEEP_CANARIES = [_plain(600), _plain(601), _alnum(36), _plain(603), _plain(604)]
SWEEP_LINE = (f'%%track --grid "{{\'lr\': [0.1, 0.2]}}" -t api_token={SWEEP_CANARIES[0]} '
              f'-t remark=ghp_{SWEEP_CANARIES[2]} --note "pw postgresql://u:{SWEEP_CANARIES[1]}@h"')
SWEEP_CELL = f'''hf_token = "{SWEEP_CANARIES[3]}"
_kw = dict(password="{SWEEP_CANARIES[4]}")
score = lr * 2
'''

# -------------------------------------------------------------------------- the spool (unreachable store)
SPOOL_CANARIES = [_plain(700), _alnum(36), _plain(702)]
SPOOL_LINE = f"%%track -t remark=ghp_{SPOOL_CANARIES[1]} --note 'token={SPOOL_CANARIES[2]}'"
SPOOL_CELL = f'api_key = "{SPOOL_CANARIES[0]}"\nlr = 0.5\n'


def credential_canaries() -> list[str]:
    """Every secret part in the corpus (each must be absent from every byte written)."""
    return ([value for _, value in NAMED] + [canary for _, canary in VALUED] + NESTED_CANARIES + SOURCE_CANARIES
            + TAG_CANARIES + [NOTE_CANARY, RUN_NAME_CANARY, API_NOTE_CANARY] + TRACEBACK_CANARIES
            + SWEEP_CANARIES + SPOOL_CANARIES)


# -------------------------------------------------------------------------- harmless look-alikes
LOOKALIKES: dict[str, object] = {
    "max_new_tokens": 512, "max_tokens": 1024, "min_new_tokens": 16, "num_tokens": 2048, "total_tokens": 100000,
    "prompt_tokens": 812, "completion_tokens": 200, "token_budget": 4096, "num_image_tokens": 576,
    "passage_tokens": 256, "max_passage_tokens": 384, "tokens_per_second": 512.5, "token_limit": 8192,
    "decoder_start_token_id": 0, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, "pad_token": "<pad>",
    "eos_token": "</s>", "bos_token": "<s>", "unk_token": "<unk>", "mask_token": "[MASK]", "sep_token": "[SEP]",
    "cls_token": "[CLS]", "additional_special_tokens": ["<img>", "</img>"], "tokenizer": "bert-base-uncased",
    "tokenizer_name": "meta-llama/Llama-3.1-8B", "tokenizer_path": "/models/tok", "use_fast_tokenizer": True,
    "tokenize_chinese_chars": True, "author": "Jane Doe", "authors": "A. Smith, B. Jones",
    "author_email": "jane@example.com", "auth_timeout_s": 30, "n_auth_retries": 3, "use_auth": True,
    "auth_type": "oauth", "auth_url": "https://login.example.com/authorize",
    "token_url": "https://login.example.com/token", "signature_dim": 128, "signature": "(x: float) -> float",
    "model_family": "sk-learn-random-forest", "sort_key": "created_at", "key_column": "user_id", "key": "date",
    "num_key_value_heads": 8, "key_dim": 64, "kv_cache": "paged", "num_keypoints": 17, "keyframe_interval": 10,
    "pass_at_k": 10, "n_passes": 3, "bypass_cache": False, "compass_heading": "NE",
    "git_sha": "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3", "run_uuid": "3f2b8c1e-9d4a-4c1b-8f3e-2a6d7c9b0e15",
    "dataset_hash": "d41d8cd98f00b204e9800998ecf8427e", "checkpoint": "s3://bucket/models/ckpt-1000",
    "mlflow_uri": "http://localhost:5000", "data_url": "https://huggingface.co/datasets/imdb",
    "hub_url": "https://example.com/data?version=2&split=train", "db_url": "sqlite:///runs.db",
    "dna": "ACGTTGCAACGGTACCATGA" * 10, "openai_model": "gpt-4o-mini", "aws_region": "us-east-1",
    "azure_deployment": "gpt4-prod", "wandb_project": "llm-ft", "hf_repo_id": "org/model",
    "api_version": "2024-02-01", "api_base": "https://api.openai.com/v1", "max_position_embeddings": 4096,
    "vocab_size": 32000, "secret_name": "prod/db", "private_key_path": "~/.ssh/id_ed25519",
    "password_min_length": 12, "cookie_name": "sessionid", "keyword": "transformer",
    "sklearn_version": "1.4.2", "skip_special_tokens": True, "truncation_side": "left",
}
LOOKALIKE_TAGS = "-t max_new_tokens=512 -t family=sk-learn-random-forest"


# Code that reads a credential without holding one: stored as written (the stored cell must still run).
KEPT_SOURCE_LINE = '_db_password = _getenv("DB_PASSWORD")'


def tracked_cell_source() -> str:
    """The big tracked cell: every named and valued credential, nested configs, source-only literals, and
    every look-alike, bound from literals (so each is a param candidate)."""
    lines = ["from argparse import Namespace", "from types import SimpleNamespace",
             "def _connect(**kwargs):", "    return None", "def _getenv(name):", "    return None",
             KEPT_SOURCE_LINE]
    lines += [f"{name} = {value!r}" for name, value in NAMED]
    lines += [f"{name} = {value!r}" for name, (value, _) in zip(VALUE_NAMES, VALUED)]
    lines += [f"{name} = {value!r}" for name, value in LOOKALIKES.items()]
    return "\n".join(lines) + "\n" + NESTED_SOURCE + SOURCE_ONLY

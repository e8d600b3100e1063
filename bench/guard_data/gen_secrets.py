"""Generates the secrets evaluation set: credentials of each shape with random bodies in
varied carriers (prose, code, config, JSON, env files, shell commands, logs), and hard
negatives (UUIDs, git SHAs, SHA-256/MD5 digests, base64 of text, ids, paths, URLs without
credentials, placeholders, code that reads a secret rather than containing one).

Rows: ``{"text", "label": 1 secret / 0 none, "entities": [{"start", "end", "type":
"SECRET"}], "lang": "en", "shape"}`` (the span schema of ../shared/data/pii_dev_en.jsonl).
Standard library only, fixed seed: ``python bench/guard_data/gen_secrets.py [--holdout] [OUT]``
(``--holdout``: other carriers and look-alikes, written after tuning; see below).

The shapes follow public token formats; the carriers and negatives were written without
looking at the scanner's output, but by the same person as the scanner: treat the numbers
as a regression check, not an independent benchmark.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import string
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

R = random.Random(20261201)
ALNUM = string.ascii_letters + string.digits
LOWER_ALNUM = string.ascii_lowercase + string.digits
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
URLSAFE = ALNUM + "-_"
UPPER_DIGITS = string.ascii_uppercase + string.digits
BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def rand(chars: str, n: int) -> str:
    return "".join(R.choice(chars) for _ in range(n))


# ------------------------------------------------------------------------- secrets

def openai() -> str:
    if R.random() < 0.5:
        return "sk-proj-" + rand(URLSAFE, 74) + "T3BlbkFJ" + rand(URLSAFE, 74)
    return "sk-" + rand(ALNUM, 20) + "T3BlbkFJ" + rand(ALNUM, 20)


def openai_nomarker() -> str:
    return "sk-" + rand(ALNUM, 48)


def anthropic() -> str:
    return "sk-ant-api03-" + rand(URLSAFE, 93) + "AA"


def aws_pair() -> str:
    kid = "AKIA" + rand(string.ascii_uppercase + "234567", 16)
    secret = rand(B64, 40)
    return f"{kid}\x00{secret}"  # split by the carrier


def github() -> str:
    if R.random() < 0.3:
        return "github_pat_" + rand(ALNUM, 22) + "_" + rand(ALNUM, 59)
    return R.choice(["ghp_", "gho_", "ghs_", "ghu_"]) + rand(ALNUM, 36)


def gitlab() -> str:
    return "glpat-" + rand(URLSAFE, 20)


def slack() -> str:
    kind = R.choice("bpa")
    return (f"xox{kind}-{R.randint(10**10, 10**12)}-{R.randint(10**10, 10**12)}-"
            + rand(ALNUM, 24))


def slack_webhook() -> str:
    return ("https://hooks.slack.com/services/T" + rand(UPPER_DIGITS, 8)
            + "/B" + rand(UPPER_DIGITS, 10) + "/" + rand(ALNUM, 24))


def stripe() -> str:
    return R.choice(["sk_live_", "rk_live_"]) + rand(ALNUM, R.choice([24, 34, 99]))


def google() -> str:
    return "AIza" + rand(URLSAFE, 35)


def twilio() -> str:
    return "SK" + rand(HEX, 32)


def sendgrid() -> str:
    return "SG." + rand(URLSAFE, 22) + "." + rand(URLSAFE, 43)


def npm() -> str:
    return "npm_" + rand(ALNUM, 36)


def pypi() -> str:
    return "pypi-AgEIcHlwaS5vcmc" + rand(URLSAFE, 120)


def huggingface() -> str:
    return "hf_" + rand(string.ascii_letters, 34)


def azure() -> str:
    key = base64.b64encode(R.randbytes(64)).decode()
    return (f"DefaultEndpointsProtocol=https;AccountName=st{rand(LOWER_ALNUM, 10)};"
            f"AccountKey={key};EndpointSuffix=core.windows.net")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def jwt() -> str:
    header = _b64url(json.dumps({"alg": R.choice(["HS256", "RS256"]), "typ": "JWT"}).encode())
    claims = {"sub": str(R.randint(1, 10**9)), "iat": R.randint(10**9, 2 * 10**9),
              "name": R.choice(["ann", "bob", "li"])}
    payload = _b64url(json.dumps(claims).encode())
    return f"{header}.{payload}.{_b64url(R.randbytes(32))}"


def bearer() -> str:
    return rand(URLSAFE + ".", R.randint(24, 64))


def pem() -> str:
    kind = R.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"])
    body = base64.b64encode(R.randbytes(R.choice([120, 300, 600]))).decode()
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN {kind}-----\n{lines}\n-----END {kind}-----"


def password() -> str:
    words = ["river", "Tiger", "maple", "Orbit", "cobalt", "sunny", "Quartz", "lemon"]
    shape = R.random()
    if shape < 0.4:
        return rand(ALNUM + "!@#%^&*", R.randint(10, 20))
    if shape < 0.7:
        return R.choice(words) + str(R.randint(10, 9999)) + R.choice("!#$%.")
    return R.choice(words) + R.choice(words) + str(R.randint(1, 99))


def generic_token() -> str:
    return rand(ALNUM, R.randint(28, 48))


def generic_hex_secret() -> str:
    return rand(HEX, R.choice([32, 40, 64]))


# ----------------------------------------------------------------------- carriers

PROSE = [
    "Here is my key: {s} can you check why it fails?",
    "I accidentally pasted {s} into the chat, is that bad?",
    "The deploy log shows {s} in the output. Why?",
    "Use {s} for the staging environment.",
    "Summarize this config for me:\n{s}\nThanks!",
]
CODE = [
    'client = OpenAI(api_key="{s}")',
    "headers = {{'Authorization': 'token {s}'}}",
    'const key = "{s}";',
    "curl -H 'X-Api-Key: {s}' https://api.example.com/v1/items",
    "{s}",
]
ENV = ["{name}={s}", "export {name}={s}", "{name}: {s}", '"{name}": "{s}"']

SHAPES: dict[str, tuple[Callable[[], str], list[str], str]] = {
    # shape: (generator, carriers, env variable name)
    "openai": (openai, PROSE + CODE + ENV, "OPENAI_API_KEY"),
    "openai_legacy": (openai_nomarker, PROSE + CODE + ENV, "OPENAI_API_KEY"),
    "anthropic": (anthropic, PROSE + CODE + ENV, "ANTHROPIC_API_KEY"),
    "github": (github, PROSE + CODE + ENV, "GITHUB_TOKEN"),
    "gitlab": (gitlab, PROSE + CODE + ENV, "GITLAB_TOKEN"),
    "slack": (slack, PROSE + CODE + ENV, "SLACK_BOT_TOKEN"),
    "slack_webhook": (slack_webhook, PROSE + ENV, "SLACK_WEBHOOK"),
    "stripe": (stripe, PROSE + CODE + ENV, "STRIPE_KEY"),
    "google": (google, PROSE + CODE + ENV, "GOOGLE_API_KEY"),
    "twilio": (twilio, PROSE + CODE + ENV, "TWILIO_API_KEY"),
    "sendgrid": (sendgrid, PROSE + CODE + ENV, "SENDGRID_API_KEY"),
    "npm": (npm, [*PROSE, "//registry.npmjs.org/:_authToken={s}", *ENV], "NPM_TOKEN"),
    "pypi": (pypi, [*PROSE, "[pypi]\nusername = __token__\npassword = {s}", *ENV], "PYPI_TOKEN"),
    "huggingface": (huggingface, PROSE + CODE + ENV, "HF_TOKEN"),
    "azure": (azure, PROSE + ENV, "AZURE_STORAGE_CONNECTION_STRING"),
    "jwt": (jwt, [*PROSE, "Authorization: Bearer {s}", "Cookie: session={s}"], "ID_TOKEN"),
    "bearer": (bearer, ["Authorization: Bearer {s}", "curl -H \"Authorization: Bearer {s}\" $URL",
                        "headers['Authorization'] = 'Bearer {s}'"], "TOKEN"),
    "pem": (pem, ["{s}", "my key:\n{s}\nwhy does ssh reject it?", "```\n{s}\n```"], "KEY"),
    "generic_token": (generic_token, [*ENV, "my api token is {s}", "secret: {s}",
                                      "auth_token = '{s}'"], "SERVICE_API_TOKEN"),
    "generic_hex": (generic_hex_secret, [*ENV, '"client_secret": "{s}"', "secret_key = '{s}'"],
                    "APP_SECRET_KEY"),
}


def place(template: str, secret: str, name: str) -> tuple[str, list[tuple[int, int]]]:
    marker = "\x01"
    text = template.replace("{name}", name).replace("{s}", marker)
    text = text.replace("{{", "{").replace("}}", "}")
    i = text.index(marker)
    return text.replace(marker, secret), [(i, i + len(secret))]


def secret_rows(per_shape: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for shape, (gen, carriers, name) in SHAPES.items():
        for _ in range(per_shape):
            text, spans = place(R.choice(carriers), gen(), name)
            rows.append(row(text, spans, shape))
    for _ in range(per_shape):  # AWS: key id and secret a line apart
        kid, secret = aws_pair().split("\x00")
        template = R.choice([
            "aws_access_key_id = {k}\naws_secret_access_key = {s}",
            "AWS_ACCESS_KEY_ID={k}\nAWS_SECRET_ACCESS_KEY={s}",
            "Access key: {k}\nSecret: {s}",
            '{{"AccessKeyId": "{k}", "SecretAccessKey": "{s}"}}',
        ]).replace("{{", "{").replace("}}", "}")
        text = template.replace("{k}", kid).replace("{s}", secret)
        ks, ss = text.index(kid), text.index(secret)
        rows.append(row(text, [(ks, ks + len(kid)), (ss, ss + len(secret))], "aws"))
    for _ in range(per_shape * 2):  # passwords: URLs, assignments, prose
        pw = password()
        template = R.choice([
            "postgres://app:{p}@db.internal:5432/orders",
            "mongodb+srv://admin:{p}@cluster0.mongodb.net/test",
            "redis://default:{p}@cache:6379/0",
            'password = "{p}"', "DB_PASSWORD={p}", "  password: '{p}'",
            '{{"username": "svc", "password": "{p}"}}', "my password is {p}",
            "SMTP_PASS={p}", "mysql -u root --password='{p}' shop",
        ]).replace("{{", "{").replace("}}", "}")
        if "://" in template:  # a URL carries its password percent-encoded
            pw = quote(pw, safe="")
        i = template.index("{p}")
        rows.append(row(template.replace("{p}", pw), [(i, i + len(pw))], "password"))
    return rows


# ---------------------------------------------------------------------- negatives

WORDS = [
    "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "while", "our", "team",
    "ships", "new", "release", "notes", "every", "friday", "after", "reviewing", "customer",
    "feedback", "and", "fixing", "bugs",
]

def uuid4() -> uuid.UUID:
    return uuid.UUID(bytes=R.randbytes(16), version=4)


def sha256_hex() -> str:
    return hashlib.sha256(R.randbytes(9)).hexdigest()


def sentence(n: int = 10) -> str:
    return " ".join(R.choice(WORDS) for _ in range(n)).capitalize() + "."


def negatives(n: int) -> list[dict[str, object]]:
    makers: list[Callable[[], str]] = [
        lambda: f"Request {uuid4()} failed with 502.",
        lambda: f"trace_id={uuid4().hex} span_id={rand(HEX, 16)}",
        lambda: f"Fixed in commit {rand(HEX, 40)} (see PR #{R.randint(10, 9999)}).",
        lambda: f"git cherry-pick {rand(HEX, 7)} {rand(HEX, 40)}",
        lambda: f"sha256sum: {sha256_hex()}  release.tar.gz",
        lambda: f"The file's SHA-256 digest is {sha256_hex()}.",
        lambda: f"md5 {hashlib.md5(R.randbytes(9)).hexdigest()} matches the mirror",
        lambda: f"image: registry.example.com/app@sha256:{sha256_hex()}",
        lambda: ('"integrity": "sha512-'
                 + base64.b64encode(hashlib.sha512(R.randbytes(8)).digest()).decode() + '"'),
        lambda: "Decode this: " + base64.b64encode(sentence(R.randint(6, 14)).encode()).decode(),
        lambda: "payload=" + base64.b64encode(
            json.dumps({"user": R.choice(WORDS), "n": R.randint(1, 99)}).encode()).decode(),
        lambda: ("Open /home/" + R.choice(WORDS) + "/projects/frontend-app/src/components/"
                 "NavigationBarContainer.tsx and fix the import"),
        lambda: "/var/lib/docker/overlay2/" + rand(HEX, 64) + "/merged",
        lambda: "C:\\Users\\Administrator\\AppData\\Local\\Programs\\Python\\Python311\\python.exe",
        lambda: f"https://www.youtube.com/watch?v={rand(URLSAFE, 11)}&list=PL{rand(URLSAFE, 32)}",
        lambda: f"https://docs.google.com/spreadsheets/d/{rand(URLSAFE, 44)}/edit#gid=0",
        lambda: f"https://github.com/{R.choice(WORDS)}/{R.choice(WORDS)}-tools/blob/main/src/index.ts",
        lambda: f"See https://example.com/articles/{R.randint(1000, 99999)}-how-to-rotate-api-keys",
        lambda: f"Customer cus_{rand(ALNUM, 14)} paid invoice in_{rand(ALNUM, 24)}.",
        lambda: f"Stripe publishable key pk_live_{rand(ALNUM, 24)} goes in the frontend.",
        lambda: (f"The order number is {R.randint(10**11, 10**12)} and tracking "
                 f"1Z{rand(UPPER_DIGITS, 16)}"),
        lambda: "password = request.form['password']",
        lambda: "api_key = os.environ[\"OPENAI_API_KEY\"]",
        lambda: "token = get_token(user)\nif not token:\n    raise AuthError()",
        lambda: "OPENAI_API_KEY=<your-api-key>\nDB_PASSWORD=${DB_PASSWORD}",
        lambda: "password: changeme   # set a real one in production",
        lambda: "Set `api_key` to your key, e.g. api_key: YOUR_API_KEY_HERE",
        lambda: "Reset your password by clicking the link. The password must be 12 characters.",
        lambda: "The key insight is that tokens are counted per request; max_tokens: 4096.",
        lambda: "tokenizer: bert-base-uncased\nmax_length: 512\nauthor: Jane Doe",
        lambda: "Forgot password? Enter your email and we'll send a reset token.",
        lambda: "function getUserAuthenticationTokenFromSessionStorage() { return null; }",
        lambda: "const AbstractSingletonProxyFactoryBeanConfigurationManager = new Factory();",
        lambda: f"Wallet 0x{rand(HEX, 40)} received 0.5 ETH.",
        lambda: "data:image/png;base64," + base64.b64encode(R.randbytes(90)).decode(),
        lambda: (f"Build {R.randint(1, 999)}.{R.randint(0, 99)}.{R.randint(0, 9)}-"
                 f"{rand(HEX, 8)} deployed to prod-eu-west-1"),
        lambda: f"ETag: \"{rand(HEX, 32)}\"",
        lambda: f"Kubernetes pod web-{rand(LOWER_ALNUM, 10)}-{rand(LOWER_ALNUM, 5)} restarted",
        lambda: "Please kill the process and rotate the keys; then email security@example.com.",
        lambda: f"{sentence(14)} {sentence(12)}",
        lambda: f"ISBN 978-{R.randint(0, 9)}-{R.randint(100, 999)}-{R.randint(10000, 99999)}-1",
        lambda: "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ" + rand(B64, 300) + " user@laptop",
        lambda: ("-----BEGIN CERTIFICATE-----\n" + base64.b64encode(R.randbytes(96)).decode()
                 + "\n-----END CERTIFICATE-----"),
        lambda: "postgres://localhost:5432/orders?sslmode=require",
        lambda: "Use the format scheme://user:password@host to connect.",
        lambda: (f"Session expired at 2026-{R.randint(1, 12):02d}-{R.randint(1, 28):02d}"
                 f"T10:00:00Z, key rotation id {R.randint(1, 99)}"),
    ]
    rows = []
    for i in range(n):
        rows.append(row(makers[i % len(makers)](), [], f"neg_{i % len(makers)}"))
    return rows


# ------------------------------------------------------------------------ holdout
# Written after the scanner was tuned on the set above and never tuned on: other carriers
# (YAML, TOML, Terraform, compose files, logs, tracebacks) and other look-alikes.

HOLDOUT_CARRIERS = [
    "services:\n  api:\n    environment:\n      - {name}={s}\n",
    'resource "provider_config" "main" {{\n  token = "{s}"\n}}',
    "[default]\n{lname} = {s}\n",
    '{{"level":"info","msg":"calling upstream","headers":{{"authorization":"Bearer {s}"}}}}',
    'requests.get(url, headers={{"X-API-Key": "{s}"}}, timeout=5)',
    "git clone https://x-access-token:{s}@github.com/acme/infra.git",
    "| name | value |\n|---|---|\n| {name} | `{s}` |",
    "Traceback (most recent call last):\n  ValueError: invalid key {s}",
    "$env:{name} = \"{s}\"",
    "kubectl create secret generic api --from-literal={lname}={s}",
]
HOLDOUT_SHAPES: list[tuple[str, Callable[[], str], str]] = [
    ("openai", openai, "OPENAI_API_KEY"), ("anthropic", anthropic, "ANTHROPIC_API_KEY"),
    ("github", github, "GH_TOKEN"), ("gitlab", gitlab, "CI_TOKEN"),
    ("slack", slack, "SLACK_TOKEN"), ("stripe", stripe, "STRIPE_SECRET"),
    ("google", google, "MAPS_API_KEY"), ("sendgrid", sendgrid, "MAIL_KEY"),
    ("npm", npm, "NPM_AUTH"), ("huggingface", huggingface, "HUGGINGFACE_HUB_TOKEN"),
    ("jwt", jwt, "ACCESS_TOKEN"), ("generic_token", generic_token, "INTERNAL_API_SECRET"),
    ("password", password, "ADMIN_PASSWORD"),
]


def holdout_rows(per_shape: int) -> list[dict[str, object]]:
    rows = []
    for shape, gen, name in HOLDOUT_SHAPES:
        for _ in range(per_shape):
            template = R.choice(HOLDOUT_CARRIERS).replace("{lname}", name.lower())
            secret = gen()
            if "://" in template:
                secret = quote(secret, safe="")
            text, spans = place(template, secret, name)
            rows.append(row(text, spans, shape))
    makers: list[Callable[[], str]] = [
        lambda: f"pinned to ipfs://Qm{rand(BASE58, 44)}",
        lambda: f"oid sha256:{sha256_hex()}\nsize {R.randint(1000, 10**7)}",
        lambda: f"tx 0x{rand(HEX, 64)} confirmed in block {R.randint(10**6, 10**7)}",
        lambda: f"arn:aws:iam::{R.randint(10**11, 10**12 - 1)}:role/service-role/lambda-exec",
        lambda: f"s3://acme-data-lake/raw/events/year=2026/month=11/part-{rand(HEX, 8)}.parquet",
        lambda: f"{{{str(uuid4()).upper()}}} is the COM class id",
        lambda: f"Join channel C{rand(UPPER_DIGITS, 10)} or DM U{rand(UPPER_DIGITS, 10)}",
        lambda: f"  File \"/opt/app/venv/lib/python3.11/site-packages/{R.choice(WORDS)}/core.py\", "
                f"line {R.randint(1, 999)}, in handle",
        lambda: f"\"resolved\": \"https://registry.npmjs.org/{R.choice(WORDS)}/-/{R.choice(WORDS)}-1.2.3.tgz\"",
        lambda: (f"fe80::{rand(HEX, 4)}:{rand(HEX, 4)}:{rand(HEX, 4)}:{rand(HEX, 4)} and MAC "
                 f"3c:22:fb:{rand(HEX, 2)}:{rand(HEX, 2)}:10"),
        lambda: "token_limit: 8192\nkey_prefix: app\npassword_min_length: 12",
        lambda: "Rotate the API key every 90 days; never paste a token into chat.",
        lambda: f"ghcr.io/acme/api:{rand(HEX, 12)}-{R.randint(1, 99)}",
        lambda: "font-src data:font/woff2;base64," + base64.b64encode(R.randbytes(120)).decode(),
        lambda: f"The password policy: {sentence(8)}",
        lambda: f"session_id={uuid4().hex}; Path=/; HttpOnly",
        lambda: "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.",
        lambda: f"#{rand(HEX, 6)} and #{rand(HEX, 6)} are the brand colours",
        lambda: (f"curl https://api.example.com/v2/users/{R.randint(1, 10**6)}"
                 "/orders?page=2&sort=desc"),
        lambda: f"bcrypt cost 12, salt rounds; user id {uuid4()}",
    ]
    for i in range(per_shape * 16):
        rows.append(row(makers[i % len(makers)](), [], f"holdout_neg_{i % len(makers)}"))
    return rows


def row(text: str, spans: list[tuple[int, int]], shape: str) -> dict[str, object]:
    return {"text": text, "label": int(bool(spans)),
            "entities": [{"start": s, "end": e, "type": "SECRET"} for s, e in spans],
            "lang": "en", "shape": shape}


def main() -> None:
    holdout = "--holdout" in sys.argv
    args = [a for a in sys.argv[1:] if a != "--holdout"]
    default = "secrets_holdout.jsonl" if holdout else "secrets_eval.jsonl"
    out = Path(args[0]) if args else Path(__file__).with_name(default)
    if holdout:
        R.seed(4242)
        rows = holdout_rows(10)
    else:
        rows = secret_rows(12) + negatives(46 * 10)
    R.shuffle(rows)
    with out.open("w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    pos = sum(int(bool(r["label"])) for r in rows)
    print(f"{out}: {len(rows)} rows ({pos} with secrets, {len(rows) - pos} without)")


if __name__ == "__main__":
    main()

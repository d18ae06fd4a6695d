"""A corpus of fake credentials in every place a request holds text: no output of `labkit lint`,
`lint --json`, `labkit simulate`, `simulate --json`, or their errors, may show one of them."""

import copy
import json

import pytest

from labkit.cli import main
from labkit.lint import lint_requests
from labkit.models import tiny_random_tokenizer
from labkit.redact import REDACTED, redact, redact_keep_lines

# Fake credentials, built from parts so that no secret scanner mistakes this file for a leak.
GITLAB = "glpat-" + "xR7dK2mP9q" + "L4vN8wT1zY"
GOOGLE = "AIza" + "SyD4k9XqL2mN7pR3" + "tV8wZ1bC6fH0jK5sQ"
STRIPE = "sk_live_" + "4eC39HqLyjWD" + "arjtT1zdp7dc"
STRIPE_RK = "rk_live_" + "51H8xYzAbCdE" + "f9GhIjKlMn0p"
NPM = "npm_" + "a1B2c3D4e5F6g7H8i9J0" + "k1L2m3N4o5P6q7R8"
JWT = "eyJhbGciOiJIUzI1NiJ9" + ".eyJzdWIiOiIxMjM0NTY3ODkwIn0" + ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9P"
HF = "hf_" + "aBcDeFgHiJkLmNoP" + "qRsTuVwXyZ012345"
AWS_ID = "ASIA" + "QX7RZ2LM4PK9TW"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG" + "/bPxRfiCYzEXAMPLEKEY"
AWS_SESSION = "FwoGZXIvYXdzEJr//////////" + "wEaDNxT0k3nS3ss10n+abc=="
URL_PASS = "s3cr3t" + "Pa55word"
PG_PASS = "Pg-pa55" + "-w0rd"
NEXT_LINE_PASS = "tr0ub4dor" + "-and-3"
PGP_BODY = "lQOYBF" + "xk2mQBCADd7Zq0v9M4nR"
API_KEY_1 = "3f9ac0ffee" + "1234567890abcdef01"
API_KEY_2 = "7d1bc0ffee" + "0987654321fedcba23"
HEADER_KEY_1 = "sk-ant-" + "api03-" + "Hd1" * 12
HEADER_KEY_2 = "c0ffee" + "4242" * 6
PLAIN_PASSWORD = "hunter2" + "-correct-horse"

SECRETS = {
    "gitlab": GITLAB[6:],
    "google": GOOGLE[4:],
    "stripe": STRIPE[8:],
    "stripe restricted": STRIPE_RK[8:],
    "npm": NPM[4:],
    "jwt payload": JWT.split(".")[1],
    "jwt signature": JWT.split(".")[2],
    "hugging face": HF[3:],
    "aws id": AWS_ID[4:],
    "aws secret": AWS_SECRET,
    "aws session": AWS_SESSION[:20],
    "url password": URL_PASS,
    "postgres password": PG_PASS,
    "next-line password": NEXT_LINE_PASS,
    "pgp body": PGP_BODY,
    "api key 1": API_KEY_1,
    "api key 2": API_KEY_2,
    "header key 1": HEADER_KEY_1[7:],
    "header key 2": HEADER_KEY_2,
    "plain password": PLAIN_PASSWORD,
}

PGP = (
    f"-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n{PGP_BODY}\n=Zq0v\n"
    "-----END PGP PRIVATE KEY BLOCK-----"
)
STS = json.dumps(
    {
        "Credentials": {
            "AccessKeyId": AWS_ID,
            "SecretAccessKey": AWS_SECRET,
            "SessionToken": AWS_SESSION,
            "Expiration": "2026-03-03T10:00:00Z",
        }
    },
    indent=2,
)


def system_text(api_key: str) -> str:
    return (
        "You are a coding agent.\n"
        f"Deploy config:\n  gitlab_token = {GITLAB}\n  maps: {GOOGLE}\n"
        f"x-api-key: {api_key}\n"
        f"password:\n  {NEXT_LINE_PASS}\n"
        f"{PGP}\n"
        "Primary key: user_id\n"
        "Be concise."
    )


def request(api_key: str, turns: int) -> dict:
    """Return an Anthropic request with a credential in every field that holds text."""
    tools = [
        {
            "name": "charge",
            "description": f"Charge a card with {STRIPE}.",
            "input_schema": {"type": "object", "properties": {"npm": {"default": NPM}}},
        }
    ]
    messages = [
        {"role": "user", "content": f"Clone https://deploy:{URL_PASS}@git.example.com/app.git"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Reading the database settings."},
                {
                    "type": "tool_use",
                    "id": "toolu_01",
                    "name": "run",
                    "input": {"command": f"HF_TOKEN={HF} psql postgres://admin:{PG_PASS}@db:5432"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01",
                    "content": f"{STS}\nAuthorization: Bearer {JWT}\n{{'password': "
                    f"'{PLAIN_PASSWORD}'}}",
                }
            ],
        },
    ]
    for k in range(turns):
        messages += [
            {"role": "assistant", "content": f"Step {k} done with {STRIPE_RK}."},
            {"role": "user", "content": "Go on."},
        ]
    return {"system": system_text(api_key), "tools": tools, "messages": messages}


SESSION = [request(API_KEY_1, 0), request(API_KEY_2, 1), request(API_KEY_2, 2)]
BAD_FIELDS = [  # fields that fail validation, each holding a credential
    {"messages": [{"role": GITLAB, "content": "hi"}]},
    {"messages": [{"role": "user", "content": [{"type": "text", "text": {"k": PLAIN_PASSWORD}}]}]},
    {"messages": [{"role": "user", "content": "hi"}], "system": [{"type": HF, "text": "x"}]},
    {"messages": [{"role": "user", "content": "hi"}], "tools": [{"name": {"k": NPM}}]},
    {"messages": [{"role": "user", "content": "hi"}], "t_s": AWS_SECRET},
]


@pytest.fixture(scope="module")
def tok():
    return tiny_random_tokenizer()


def assert_clean(*outputs: str) -> None:
    for output in outputs:
        for name, secret in SECRETS.items():
            assert secret not in output, f"{name} leaked: {output[:400]}"


def test_each_format_is_redacted_and_harmless_text_is_not():
    corpus = "\n".join(json.dumps(r) for r in SESSION) + system_text(API_KEY_1) + STS
    assert_clean(redact(corpus), redact_keep_lines(corpus))
    assert redact_keep_lines(corpus).count("\n") == corpus.count("\n")
    harmless = "Primary key: user_id\nsort_key=name; the key insight; cch=56445; page=2"
    assert redact(harmless) == harmless


def test_a_changed_secret_shows_only_that_it_changed_and_where(tok):
    report = lint_requests(SESSION[:2], tok)
    row = report.requests[1]
    assert row.cause == "changing-secret" and row.where == "system[0]"
    assert "line 5" in row.detail and REDACTED in row.new_text
    assert_clean(row.detail, row.previous_text, row.new_text)


def write_capture(path, session, header_keys):
    lines = [
        json.dumps({"headers": {"x-api-key": key, "authorization": f"Bearer {JWT}"}, "body": r})
        for r, key in zip(session, header_keys, strict=True)
    ]
    path.write_text("\n".join(lines + [json.dumps(bad) for bad in BAD_FIELDS]) + "\n")


def test_lint_text_json_and_errors_show_no_credential(tmp_path, capsys):
    path = tmp_path / "capture.jsonl"
    write_capture(path, SESSION, [HEADER_KEY_1, HEADER_KEY_2, HEADER_KEY_2])
    outputs = []
    for extra in ([], ["--json"]):
        assert main(["lint", str(path), "--model", "tiny-random", *extra]) == 1  # partial
        captured = capsys.readouterr()
        outputs += [captured.out, captured.err]
    report = json.loads(outputs[2])
    assert [r["cause"] for r in report["requests"]] == ["first", "changing-secret", "append-only"]
    assert len(report["errors"]) == len(BAD_FIELDS)  # each bad field named, none echoed
    assert all(e["message"].startswith(f"line {4 + k}:") for k, e in enumerate(report["errors"]))
    assert_clean(*outputs)


def test_simulate_table_json_and_errors_show_no_credential(tmp_path, capsys):
    good = tmp_path / "session.jsonl"
    good.write_text("\n".join(json.dumps(r) for r in SESSION) + "\n")
    outputs = []
    for extra in ([], ["--json"]):
        assert (
            main(["simulate", str(good), "--engine", "llamacpp", "--model", "tiny-random"] + extra)
            == 0
        )
        captured = capsys.readouterr()
        outputs += [captured.out, captured.err]
    for k, bad in enumerate(BAD_FIELDS):
        path = tmp_path / f"bad{k}.jsonl"
        path.write_text(json.dumps(SESSION[0]) + "\n" + json.dumps(bad) + "\n")
        assert main(["simulate", str(path), "--engine", "vllm", "--model", "tiny-random"]) == 2
        err = capsys.readouterr().err
        assert f"{path}: request 1 (line 2): " in err and "Traceback" not in err
        outputs.append(err)
    assert_clean(*outputs)


def test_a_model_id_or_url_with_credentials_is_redacted_in_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    session = tmp_path / "session.jsonl"
    session.write_text(json.dumps(SESSION[0]) + "\n")
    for model in (f"https://deploy:{URL_PASS}@models.example.com/m", f"org/model-{HF}"):
        assert main(["simulate", str(session), "--engine", "sglang", "--model", model]) == 2
        assert main(["lint", str(session), "--model", model]) == 2
    assert_clean(capsys.readouterr().err)


def test_changing_header_values_are_not_prompt_text(tmp_path, tok, capsys):
    """Headers are dropped: two requests that differ only in their x-api-key are append-only."""
    path = tmp_path / "capture.jsonl"
    same = [SESSION[1], copy.deepcopy(SESSION[1])]
    write_capture(path, same, [HEADER_KEY_1, HEADER_KEY_2])
    assert main(["lint", str(path), "--model", "tiny-random", "--json"]) == 1
    out = capsys.readouterr().out
    assert json.loads(out)["requests"][1]["cause"] == "append-only"
    assert_clean(out)

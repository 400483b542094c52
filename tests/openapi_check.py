"""Checks HTTP exchanges against an OpenAPI 3 document with openapi-core.

Usage: openapi_check.py SPEC.json EXCHANGES.json

The document itself is validated first (openapi-spec-validator, through
openapi-core). EXCHANGES is a list of objects: command (the curl command line, whose
-d/--data argument is the request body unless -G moved it to the query, and
whose -H content-type header, or curl's default, its content type),
method, url (with its query), status, content_type, response_body (text).
Each request and its response must be what the document describes; every
problem is printed, and the exit status is 1 if there was any.
"""

import json
import shlex
import sys
from urllib.parse import parse_qs, urlsplit

from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse


def request_body(command: str):
    """The body a curl command sends (its -d argument, unless -G) and its
    content type (a -H content-type, else curl's default for -d)."""
    words = shlex.split(command.replace("\\\n", " "), comments=True)
    content_type = None
    for at, word in enumerate(words[:-1]):
        if word in ("-H", "--header") and words[at + 1].lower().startswith("content-type:"):
            content_type = words[at + 1].split(":", 1)[1].strip()
    if "-G" in words or "--get" in words:
        return None, content_type
    for at, word in enumerate(words[:-1]):
        if word in ("-d", "--data", "--data-raw", "--data-binary"):
            return words[at + 1], content_type or "application/x-www-form-urlencoded"
    return None, content_type


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        spec = json.load(f)
    with open(sys.argv[2], encoding="utf-8") as f:
        exchanges = json.load(f)
    # Validates the document itself (raises on an invalid one).
    api = OpenAPI.from_dict(spec)
    problems = 0
    for exchange in exchanges:
        url = urlsplit(exchange["url"])
        args = {k: v if len(v) > 1 else v[0] for k, v in parse_qs(url.query).items()}
        body, content_type = request_body(exchange.get("command", ""))
        request = MockRequest(
            "http://localhost",
            exchange["method"].lower(),
            url.path,
            args=args,
            data=body.encode() if body else None,
            content_type=content_type,
        )
        response = MockResponse(
            exchange["response_body"].encode(),
            status_code=exchange["status"],
            content_type=(exchange.get("content_type") or "").split(";")[0],
        )
        what = f'{exchange["method"]} {exchange["url"]} -> {exchange["status"]}'
        for label, check in (
            ("request", lambda: api.validate_request(request)),
            ("response", lambda: api.validate_response(request, response)),
        ):
            try:
                check()
            except Exception as error:  # every validation error, reported alike
                problems += 1
                causes = getattr(error, "__cause__", None)
                schema_errors = getattr(causes, "schema_errors", None) or []
                detail = "; ".join(str(e.message) for e in schema_errors) or repr(causes or error)
                print(f"{what}: the {label} does not match the document: {error}: {detail}")
    print(f"{len(exchanges)} exchanges checked, {problems} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

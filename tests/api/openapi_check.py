"""Checks an HTTP answer against what `/openapi.json` says that route answers."""

from __future__ import annotations

from typing import Any

import httpx
from jsonschema import Draft202012Validator


class DocumentedAnswers:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def check(self, method: str, path: str, response: httpx.Response) -> None:
        """The status is documented for the route, and a JSON body fits its schema."""
        operation = self.document["paths"][path][method.lower()]
        where = f"{method} {path} -> {response.status_code}"
        documented = operation["responses"].get(str(response.status_code))
        assert documented is not None, f"{where}: status not in /openapi.json"
        content = documented.get("content", {})
        media = response.headers.get("content-type", "").split(";")[0]
        if media != "application/json":
            return
        assert "application/json" in content, f"{where}: JSON answer documented as {content}"
        schema = {
            "allOf": [content["application/json"]["schema"]],
            "components": self.document["components"],
        }
        errors = list(Draft202012Validator(schema).iter_errors(response.json()))
        assert not errors, f"{where}: {errors[0].message} at {list(errors[0].absolute_path)}"

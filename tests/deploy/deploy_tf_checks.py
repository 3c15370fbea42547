"""Checkers over the parsed Terraform of deploy/ecs/ (python-hcl2, no provider).

The checkers are plain functions returning a list of human-readable violations, so the tests
can run them on the real module and on mutated copies of it (to prove they can fail).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
from hcl2.utils import SerializationOptions

REPO = Path(__file__).resolve().parents[2]
MODULE_DIR = REPO / "deploy" / "ecs"
RULE_SQL_FILE = MODULE_DIR / "rule.sql"

EXPECTED_RULE_SQL = "SELECT *, topic(3) AS thing, timestamp() AS received_ms FROM 'energy/consumption/+'"

# Actions that AWS authorizes only against Resource "*". A statement may use "*" only if every
# action in it is listed here AND the statement carries a comment saying why.
STAR_RESOURCE_ALLOWED_ACTIONS = {
    "ecr:GetAuthorizationToken",  # account-level token, no resource type
    "cloudwatch:PutMetricData",  # metrics are not resources; narrowed by cloudwatch:namespace
}
STAR_COMMENT_MARK = 'supports only Resource "*"'

# Conditions such a statement must carry, per action.
STAR_REQUIRED_CONDITION_KEYS = {"cloudwatch:PutMetricData": "cloudwatch:namespace"}

_OPTIONS = SerializationOptions(strip_string_quotes=True, explicit_blocks=False)


def parse_file(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:
        return hcl2.load(fh, serialization_options=_OPTIONS)


def unescape(value: str) -> str:
    """HCL's literal "$${" (an escaped interpolation) as Terraform hands it to the provider."""
    return value.replace("$${", "${")


@dataclass
class Module:
    """All *.tf files of one directory, indexed by block kind."""

    files: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path) -> Module:
        files = {p.name: parse_file(p) for p in sorted(directory.glob("*.tf"))}
        if not files:
            raise FileNotFoundError(f"no *.tf files in {directory}")
        return cls(files)

    def copy(self) -> Module:
        return Module(copy.deepcopy(self.files))

    def _blocks(self, kind: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
        for parsed in self.files.values():
            for entry in parsed.get(kind, []):
                for rtype, named in entry.items():
                    for name, body in named.items():
                        yield rtype, name, body

    def resources(self, rtype: str) -> dict[str, dict[str, Any]]:
        return {name: body for t, name, body in self._blocks("resource") if t == rtype}

    def data(self, dtype: str) -> dict[str, dict[str, Any]]:
        return {name: body for t, name, body in self._blocks("data") if t == dtype}

    def all_resources(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        return self._blocks("resource")

    @property
    def locals(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for parsed in self.files.values():
            for block in parsed.get("locals", []):
                merged.update({k: v for k, v in block.items() if not k.startswith("__")})
        return merged

    @property
    def variables(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for parsed in self.files.values():
            for entry in parsed.get("variable", []):
                out.update(entry)
        return out


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def first(value: Any) -> dict[str, Any]:
    """A nested block (parsed as a list of one dict) or {}."""
    items = as_list(value)
    return items[0] if items and isinstance(items[0], dict) else {}


def comments(block: dict[str, Any]) -> str:
    parts = [c.get("value", "") for c in as_list(block.get("__comments__"))]
    parts += [c.get("value", "") for c in as_list(block.get("__inline_comments__"))]
    return "\n".join(parts)


def references(value: Any, address: str) -> bool:
    """Whether an HCL expression (as parsed) refers to `address` (e.g. 'aws_kms_key.data')."""
    return isinstance(value, str) and re.search(re.escape(address) + r"(\[[^\]]*\])?\.", value) is not None


def refers_to_type(value: Any, rtype: str) -> bool:
    return isinstance(value, str) and re.search(r"\b" + re.escape(rtype) + r"\.[A-Za-z0-9_-]+", value) is not None


# --- Checkers -------------------------------------------------------------------------------


def key_policy_documents(module: Module) -> set[str]:
    """Names of aws_iam_policy_document blocks used as KMS key policies."""
    names = set()
    for body in module.resources("aws_kms_key").values():
        m = re.search(r"data\.aws_iam_policy_document\.([A-Za-z0-9_-]+)", str(body.get("policy", "")))
        if m:
            names.add(m.group(1))
    # A document that some other resource also uses is not exempt.
    for rtype, _name, body in module.all_resources():
        if rtype != "aws_kms_key":
            names -= set(re.findall(r"data\.aws_iam_policy_document\.([A-Za-z0-9_-]+)", repr(body)))
    return names


def _is_star(resource: Any) -> bool:
    if not isinstance(resource, str):
        return False
    # A bare "*", or a quoted "*" inside an expression such as ${concat(["*"], ...)}.
    return resource.strip() == "*" or '"*"' in resource


def iam_star_violations(module: Module) -> list[str]:
    """Allow statements whose resources include "*" outside the allow-list (key policies aside)."""
    problems = []
    key_policies = key_policy_documents(module)
    for doc_name, doc in module.data("aws_iam_policy_document").items():
        for i, st in enumerate(as_list(doc.get("statement"))):
            where = f"data.aws_iam_policy_document.{doc_name} statement {st.get('sid', i)}"
            if "not_resources" in st or "not_actions" in st:
                problems.append(f"{where}: NotResource/NotAction are not allowed")
            if str(st.get("effect", "Allow")) != "Allow":
                continue
            if not any(_is_star(r) for r in as_list(st.get("resources"))):
                continue
            if doc_name in key_policies:
                # In a key policy, Resource "*" means "this key"; nothing else is accepted.
                if "Key policy" not in comments(doc):
                    problems.append(f"{where}: key policy without a comment saying why '*' is used")
                continue
            actions = [str(a) for a in as_list(st.get("actions"))]
            outside = [a for a in actions if a not in STAR_RESOURCE_ALLOWED_ACTIONS]
            if outside or not actions:
                problems.append(f"{where}: Resource '*' for actions not on the allow-list: {outside or actions}")
            if STAR_COMMENT_MARK not in comments(st):
                problems.append(f"{where}: Resource '*' without a comment containing {STAR_COMMENT_MARK!r}")
            for action in actions:
                needed = STAR_REQUIRED_CONDITION_KEYS.get(action)
                if needed and needed not in [c.get("variable") for c in as_list(st.get("condition"))]:
                    problems.append(f"{where}: {action} on '*' needs a condition on {needed}")
    return problems


def inline_policy_violations(module: Module) -> list[str]:
    """Every policy document must be an aws_iam_policy_document (so the checkers see it)."""
    policy_attrs = {
        "aws_iam_role_policy": "policy",
        "aws_iam_policy": "policy",
        "aws_iam_role": "assume_role_policy",
        "aws_s3_bucket_policy": "policy",
        "aws_sns_topic_policy": "policy",
        "aws_iot_policy": "policy",
        "aws_kms_key": "policy",
    }
    problems = []
    for rtype, name, body in module.all_resources():
        attr = policy_attrs.get(rtype)
        if attr and not re.search(
            r"data\.aws_iam_policy_document\.[A-Za-z0-9_-]+(\[[^\]]*\])?\.json", str(body.get(attr, ""))
        ):
            problems.append(f"{rtype}.{name}.{attr} is not an aws_iam_policy_document's json")
        if rtype in {"aws_iam_role_policy_attachment", "aws_iam_policy_attachment"}:
            problems.append(f"{rtype}.{name}: managed policy attachments are not allowed (scope inline)")
    return problems


def dynamodb_violations(module: Module) -> list[str]:
    problems = []
    tables = module.resources("aws_dynamodb_table")
    if not tables:
        problems.append("no aws_dynamodb_table at all")
    for name, body in tables.items():
        if first(body.get("point_in_time_recovery")).get("enabled") is not True:
            problems.append(f"aws_dynamodb_table.{name}: point_in_time_recovery not enabled")
        sse = first(body.get("server_side_encryption"))
        if sse.get("enabled") is not True or not refers_to_type(sse.get("kms_key_arn"), "aws_kms_key"):
            problems.append(f"aws_dynamodb_table.{name}: server_side_encryption without a customer KMS key")
        if body.get("billing_mode") != "PAY_PER_REQUEST":
            problems.append(f"aws_dynamodb_table.{name}: billing_mode is not PAY_PER_REQUEST")
    return problems


def _configs_for_bucket(module: Module, rtype: str, bucket: str) -> list[dict[str, Any]]:
    return [b for b in module.resources(rtype).values() if references(b.get("bucket"), f"aws_s3_bucket.{bucket}")]


def s3_violations(module: Module) -> list[str]:
    problems = []
    buckets = module.resources("aws_s3_bucket")
    if not buckets:
        problems.append("no aws_s3_bucket at all")
    for name in buckets:
        where = f"aws_s3_bucket.{name}"
        versioning = _configs_for_bucket(module, "aws_s3_bucket_versioning", name)
        if not any(first(v.get("versioning_configuration")).get("status") == "Enabled" for v in versioning):
            problems.append(f"{where}: no aws_s3_bucket_versioning with status Enabled")
        sse_ok = False
        for cfg in _configs_for_bucket(module, "aws_s3_bucket_server_side_encryption_configuration", name):
            for rule in as_list(cfg.get("rule")):
                default = first(rule.get("apply_server_side_encryption_by_default"))
                if default.get("sse_algorithm") == "aws:kms" and refers_to_type(
                    default.get("kms_master_key_id"), "aws_kms_key"
                ):
                    sse_ok = True
        if not sse_ok:
            problems.append(f"{where}: no SSE-KMS configuration with a customer KMS key")
        pab = _configs_for_bucket(module, "aws_s3_bucket_public_access_block", name)
        flags = ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets")
        if not any(all(p.get(f) is True for f in flags) for p in pab):
            problems.append(f"{where}: public access not fully blocked")
        if not _configs_for_bucket(module, "aws_s3_bucket_policy", name):
            problems.append(f"{where}: no bucket policy (TLS-only)")
    return problems


def tls_only_policy_violations(module: Module) -> list[str]:
    """Each bucket policy document denies requests without aws:SecureTransport."""
    problems = []
    docs = module.data("aws_iam_policy_document")
    for name, policy in module.resources("aws_s3_bucket_policy").items():
        m = re.search(r"data\.aws_iam_policy_document\.([A-Za-z0-9_-]+)", str(policy.get("policy", "")))
        doc = docs.get(m.group(1)) if m else None
        denies = [
            st
            for st in as_list((doc or {}).get("statement"))
            if st.get("effect") == "Deny"
            and any(
                c.get("variable") == "aws:SecureTransport" and as_list(c.get("values")) == ["false"]
                for c in as_list(st.get("condition"))
            )
        ]
        if not denies:
            problems.append(f"aws_s3_bucket_policy.{name}: no Deny on aws:SecureTransport = false")
    return problems


def kinesis_violations(module: Module) -> list[str]:
    problems = []
    streams = module.resources("aws_kinesis_stream")
    if not streams:
        problems.append("no aws_kinesis_stream at all")
    for name, body in streams.items():
        if body.get("encryption_type") != "KMS" or not refers_to_type(body.get("kms_key_id"), "aws_kms_key"):
            problems.append(f"aws_kinesis_stream.{name}: not encrypted with a customer KMS key")
    return problems


THING = "&{iot:Connection.Thing.ThingName}"


def iot_policy_violations(module: Module) -> list[str]:
    problems = []
    policies = module.resources("aws_iot_policy")
    docs = module.data("aws_iam_policy_document")
    if not policies:
        return ["no aws_iot_policy"]
    for pname, policy in policies.items():
        m = re.search(r"data\.aws_iam_policy_document\.([A-Za-z0-9_-]+)", str(policy.get("policy", "")))
        doc = docs.get(m.group(1)) if m else None
        if doc is None:
            problems.append(f"aws_iot_policy.{pname}: policy is not an aws_iam_policy_document")
            continue
        connect_ok = publish_ok = False
        for st in as_list(doc.get("statement")):
            actions = [str(a) for a in as_list(st.get("actions"))]
            resources = as_list(st.get("resources"))
            resolved = [
                module.locals.get(r[len("${local.") : -1], r) if isinstance(r, str) and r.startswith("${local.") else r
                for r in resources
            ]
            text = " ".join(str(r) for r in resolved)
            if any(a == "iot:*" or a.endswith("*") for a in actions):
                problems.append(f"aws_iot_policy.{pname}: wildcard action {actions}")
            if any(_is_star(r) or str(r).endswith("/*") or str(r).endswith("/#") for r in resolved):
                problems.append(f"aws_iot_policy.{pname}: wildcard resource {resolved}")
            if set(actions) - {"iot:Connect", "iot:Publish"}:
                problems.append(
                    f"aws_iot_policy.{pname}: unexpected actions {sorted(set(actions) - {'iot:Connect', 'iot:Publish'})}"
                )
            if "iot:Connect" in actions:
                connect_ok = len(resolved) == 1 and str(resolved[0]).endswith(f":client/{THING}")
                if not connect_ok:
                    problems.append(f"aws_iot_policy.{pname}: iot:Connect not limited to client/{THING}: {resolved}")
            if "iot:Publish" in actions:
                topics = re.findall(r":topic/([^\"\]\s,]+)", text)
                allowed = {f"energy/consumption/{THING}"}
                allowed |= {
                    t
                    for t in topics
                    if re.fullmatch(r"\$aws/rules/\$\{var\.iot_rule_name\}/energy/consumption/" + re.escape(THING), t)
                }
                publish_ok = bool(topics) and set(topics) <= allowed and f"energy/consumption/{THING}" in topics
                if not publish_ok:
                    problems.append(
                        f"aws_iot_policy.{pname}: iot:Publish topics not limited to the thing's own topic: {topics}"
                    )
        if not connect_ok:
            problems.append(f"aws_iot_policy.{pname}: no iot:Connect statement on the thing-name client id")
        if not publish_ok:
            problems.append(f"aws_iot_policy.{pname}: no iot:Publish statement on energy/consumption/{THING}")
    return problems


def rule_sql_violations(module: Module, rule_sql_text: str) -> list[str]:
    problems = []
    if rule_sql_text.strip() != EXPECTED_RULE_SQL:
        problems.append(f"rule.sql is {rule_sql_text.strip()!r}, expected {EXPECTED_RULE_SQL!r}")
    local_sql = module.locals.get("rule_sql")
    if local_sql != '${trimspace(file("${path.module}/rule.sql"))}':
        problems.append(f'local.rule_sql must be trimspace(file("${{path.module}}/rule.sql")), is {local_sql!r}')
    rules = module.resources("aws_iot_topic_rule")
    if not rules:
        problems.append("no aws_iot_topic_rule")
    for name, rule in rules.items():
        if rule.get("sql") != "${local.rule_sql}":
            problems.append(f"aws_iot_topic_rule.{name}.sql must be local.rule_sql, is {rule.get('sql')!r}")
        if rule.get("sql_version") != "2016-03-23":
            problems.append(f"aws_iot_topic_rule.{name}.sql_version must be 2016-03-23")
        kinesis = first(rule.get("kinesis"))
        if unescape(str(kinesis.get("partition_key", ""))) != "${topic(3)}":
            problems.append(f"aws_iot_topic_rule.{name}: Kinesis partition key must be ${{topic(3)}}")
        if not refers_to_type(kinesis.get("stream_name"), "aws_kinesis_stream"):
            problems.append(f"aws_iot_topic_rule.{name}: Kinesis action must target the stack's stream")
        if not rule.get("error_action"):
            problems.append(f"aws_iot_topic_rule.{name}: no error_action")
    return problems

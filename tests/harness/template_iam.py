"""Run handlers in moto with exactly the IAM permissions template.yaml grants their function.

The template goes through the SAM translator (as `sam deploy` does), so policy templates
and SAM's generated roles are expanded by SAM's own code. Intrinsics (`Ref`, `GetAtt`,
`Sub`, `If`, `Join`, `Select`, `Split`) are then resolved against what the test made in
moto. Each function's role becomes an IAM user in moto with the same policy documents,
and moto checks every call signed with its keys.

moto checks resources for S3 and SQS only; `enforce_iam` teaches it the resource of the
DynamoDB, Secrets Manager and Step Functions calls this product makes, and two documented
AWS rules moto lacks:
- without s3:ListBucket, a HEAD or GET of a missing key answers 403, not 404 (S3 User
  Guide, "Amazon S3 actions": GetObject);
- reading a secret encrypted with a customer managed key needs kms:Decrypt on that key
  through Secrets Manager (Secrets Manager User Guide, "Secret encryption and decryption").
"""

from __future__ import annotations

import fnmatch
import functools
import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import boto3
import botocore.loaders
import botocore.session
from cfnlint.decode import decode_str
from moto import settings
from moto.awslambda.responses import LambdaResponse
from moto.core.authorization import ActionAuthenticatorMixin
from moto.dynamodb.responses import DynamoHandler
from moto.s3.responses import S3Response
from moto.secretsmanager.models import secretsmanager_backends
from moto.secretsmanager.responses import SecretsManagerResponse
from moto.stepfunctions.responses import StepFunctionResponse

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
REGION = "us-east-1"
PARTITION = "aws"

# The AWS managed policies SAM attaches to function roles (documents as AWS publishes them).
MANAGED_POLICIES: dict[str, dict[str, Any]] = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": "*",
            }
        ],
    },
    "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:GetQueueAttributes",
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                ],
                "Resource": "*",
            }
        ],
    },
}


@dataclass(frozen=True)
class Physical:
    """What CloudFormation would return for a resource: Ref and its attributes."""

    ref: str
    attributes: dict[str, str]


# Parameters that only name things (a Source id, a secret's ARN: new in every test): the
# translation does not branch on their values, so it is made once under placeholders and
# the values are put back after (the translator takes about half a second a run).
_NAMES_ONLY = ("ImgixSourceIds", "ImgixApiKeySecretArn")


def sam_translate(parameters: dict[str, str]) -> dict[str, Any]:
    """template.yaml as CloudFormation, through the SAM translator `sam deploy` uses."""
    placeholders = {name: f"placeholder-for-{name}" for name in _NAMES_ONLY if name in parameters}
    keyed = {**parameters, **placeholders}
    text = json.dumps(_translated(json.dumps(keyed, sort_keys=True)))
    for name, token in placeholders.items():
        value = parameters[name]
        assert json.dumps(value) == f'"{value}"', f"{name} must be JSON-plain: {value!r}"
        text = text.replace(token, value)
    translated: dict[str, Any] = json.loads(text)
    return translated


@functools.cache
def _translated(parameters_json: str) -> dict[str, Any]:
    import os

    from samtranslator.translator.transform import transform

    parameters = json.loads(parameters_json)
    template, problems = decode_str((ROOT / "template.yaml").read_text())
    assert not problems, problems
    document = json.loads(json.dumps(template))
    for resource in document["Resources"].values():
        for uri in ("CodeUri", "ContentUri", "DefinitionUri"):
            if uri in resource.get("Properties", {}):
                resource["Properties"][uri] = "s3://packaged-by-sam/artifact.zip"

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    translated: dict[str, Any] = transform(document, parameters, NoManagedPolicies())
    return translated


class Resolver:
    def __init__(
        self, template: dict[str, Any], parameters: dict[str, str], physical: dict[str, Physical]
    ) -> None:
        self.template = template
        self.physical = physical
        self.values: dict[str, Any] = {
            name: spec.get("Default", "") for name, spec in template.get("Parameters", {}).items()
        }
        self.values.update(parameters)
        self.values.update(
            {
                "AWS::Region": REGION,
                "AWS::AccountId": ACCOUNT,
                "AWS::Partition": PARTITION,
                "AWS::StackName": "imgix-autoadder",
                "AWS::URLSuffix": "amazonaws.com",
            }
        )

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template["Conditions"][name]))

    def ref(self, name: str) -> Any:
        if name in self.values:
            return self.values[name]
        if name in self.physical:
            return self.physical[name].ref
        raise KeyError(f"the test made nothing for Ref {name}")

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            items = [self.resolve(item) for item in node]
            return [item for item in items if item is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((name, arg),) = node.items()
            if name == "Ref":
                return _NO_VALUE if arg == "AWS::NoValue" else self.ref(arg)
            if name == "Fn::GetAtt":
                logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.physical[logical].attributes[attribute]
            if name == "Fn::Sub":
                text, extra = (arg, {}) if isinstance(arg, str) else arg
                return self._sub(text, {k: self.resolve(v) for k, v in extra.items()})
            if name == "Fn::If":
                chosen = arg[1] if self.condition(arg[0]) else arg[2]
                return self.resolve(chosen)
            if name == "Fn::Join":
                return arg[0].join(str(v) for v in self.resolve(arg[1]))
            if name == "Fn::Select":
                return self.resolve(arg[1])[int(self.resolve(arg[0]))]
            if name == "Fn::Split":
                return str(self.resolve(arg[1])).split(arg[0])
            if name == "Fn::Equals":
                return self.resolve(arg[0]) == self.resolve(arg[1])
            if name == "Fn::Not":
                return not self.resolve(arg[0])
            if name == "Fn::And":
                return all(self.resolve(a) for a in arg)
            if name == "Fn::Or":
                return any(self.resolve(a) for a in arg)
            if name == "Condition":
                return self.condition(arg)
        out = {key: self.resolve(value) for key, value in node.items()}
        return {key: value for key, value in out.items() if value is not _NO_VALUE}

    def _sub(self, text: str, extra: dict[str, Any]) -> str:
        out, rest = [], text
        while "${" in rest:
            head, _, tail = rest.partition("${")
            name, _, rest = tail.partition("}")
            out.append(head)
            if name.startswith("!"):
                out.append("${" + name[1:] + "}")
            elif name in extra:
                out.append(str(extra[name]))
            elif "." in name:
                logical, attribute = name.split(".", 1)
                out.append(self.physical[logical].attributes[attribute])
            else:
                out.append(str(self.ref(name)))
        out.append(rest)
        return "".join(out)


_NO_VALUE: Any = object()


def role_policies(
    function: str,
    parameters: dict[str, str],
    physical: dict[str, Physical],
    translated: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Every policy document the deployed role of `function` (a logical id) would carry
    (`translated`: sam_translate(parameters), when the caller has it already)."""
    if translated is None:
        translated = sam_translate(parameters)
    resolver = Resolver(translated, parameters, physical)
    role = translated["Resources"][f"{function}Role"]["Properties"]
    documents = [resolver.resolve(p["PolicyDocument"]) for p in role.get("Policies", [])]
    documents += [MANAGED_POLICIES[arn] for arn in role.get("ManagedPolicyArns", [])]
    return [{"Version": "2012-10-17", **doc} for doc in documents]


# One loader of AWS's service models for every session of a test process: each new
# botocore session would otherwise parse the same JSON models again (most of a test's
# set-up time). The models are read-only data; moto patches requests, not models.
_MODELS = botocore.loaders.create_loader()


def shared_models_session(**kw: Any) -> boto3.Session:
    """A boto3 session like boto3.Session(**kw), reading the process's shared models."""
    core = botocore.session.Session()
    core.register_component("data_loader", _MODELS)
    return boto3.Session(botocore_session=core, **kw)


def identity_user(name: str, documents: list[dict[str, Any]]) -> tuple[str, str]:
    """An IAM user in moto holding exactly these policies; its access key.

    Made in moto's IAM backend directly: the same user, policies (validated as IAM does)
    and key as through the API, without a client per test (nine users a test)."""
    from moto.iam.models import iam_backends

    iam = iam_backends[ACCOUNT][PARTITION]
    iam.create_user(REGION, name)
    for index, document in enumerate(documents):
        iam.put_user_policy(name, f"policy{index}", json.dumps(document))
    key = iam.create_access_key(name)
    return key.access_key_id, key.secret_access_key


def key_session(key: tuple[str, str]) -> boto3.Session:
    return shared_models_session(
        aws_access_key_id=key[0], aws_secret_access_key=key[1], region_name=REGION
    )


def identity_session(name: str, documents: list[dict[str, Any]]) -> boto3.Session:
    """An IAM user in moto holding exactly these policies, as a boto3 session."""
    return key_session(identity_user(name, documents))


class Identities(Mapping[str, boto3.Session]):
    """function -> a session as its IAM user. The users exist from the start; a session
    (20 ms of botocore set-up) is made when a test first acts as that function: most tests
    run one or two of the nine."""

    def __init__(self, keys: dict[str, tuple[str, str]]) -> None:
        self._keys = keys
        self._sessions: dict[str, boto3.Session] = {}

    def __getitem__(self, function: str) -> boto3.Session:
        if function not in self._sessions:
            self._sessions[function] = key_session(self._keys[function])
        return self._sessions[function]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def admin_session() -> boto3.Session:
    return identity_session(
        "test-admin",
        [
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
            }
        ],
    )


# -- teaching moto the resources and rules it does not check ---------------------------------
def _json_body(response: Any) -> dict[str, Any]:
    if isinstance(response.body, dict):
        return response.body
    try:
        body = json.loads(response.body or "{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _dynamodb_resource(self: Any) -> str:
    body = _json_body(self)
    tables = [body["TableName"]] if "TableName" in body else list(body.get("RequestItems", {}))
    if len(tables) != 1:
        return "*"
    return f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{tables[0]}"


def _secret_resource(self: Any) -> str:
    secret_id = _json_body(self).get("SecretId")
    if not secret_id:
        return "*"
    try:
        secret = secretsmanager_backends[ACCOUNT][REGION].describe_secret(secret_id)
    except Exception:
        return "*"
    return str(secret.arn)


def _lambda_resource(self: Any) -> str:
    """/2015-03-31/functions/<name or ARN>/invocations -> the function's ARN."""
    from urllib.parse import unquote

    parts = unquote(self.path.split("?")[0]).split("/functions/", 1)
    if len(parts) != 2:
        return "*"
    name = parts[1].split("/invocations")[0].rstrip("/")
    if name.startswith("arn:"):
        return name
    return f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:{name}"


def _stepfunctions_resource(self: Any) -> str:
    body = _json_body(self)
    return str(body.get("stateMachineArn") or body.get("executionArn") or "*")


def _statement_allows(
    statement: dict[str, Any], action: str, resource: str, context: dict[str, str]
) -> bool:
    def matches(patterns: Any, value: str) -> bool:
        items = patterns if isinstance(patterns, list) else [patterns]
        return any(fnmatch.fnmatchcase(value, str(p)) for p in items)

    if statement.get("Effect") != "Allow" or not matches(statement.get("Action", []), action):
        return False
    if not matches(statement.get("Resource", []), resource):
        return False
    for operator, pairs in (statement.get("Condition") or {}).items():
        for key, wanted in pairs.items():
            if operator not in ("StringEquals", "StringLike") or key not in context:
                return False
            if not matches(wanted, context[key]):
                return False
    return True


def _caller_policies(self: Any) -> list[dict[str, Any]]:
    from moto.iam.models import iam_backends

    credential = self.headers["Authorization"].split("Credential=")[1].split("/")[0]
    iam = iam_backends[ACCOUNT][PARTITION]
    for user in iam.users.values():
        if any(k.access_key_id == credential for k in user.access_keys):
            return [json.loads(document) for document in user.policies.values()]
    return []


def _allowed(self: Any, action: str, resource: str, context: dict[str, str] | None = None) -> bool:
    for document in _caller_policies(self):
        statements = document.get("Statement", [])
        for statement in statements if isinstance(statements, list) else [statements]:
            if _statement_allows(statement, action, resource, context or {}):
                return True
    return False


@contextmanager
def enforce_iam() -> Iterator[None]:
    """Every call from here on is authenticated and authorized by moto (and the rules above)."""
    patches: list[tuple[Any, str, Any]] = []

    def patch(cls: Any, name: str, value: Any) -> None:
        patches.append((cls, name, cls.__dict__.get(name, _NO_VALUE)))
        setattr(cls, name, value)

    patch(DynamoHandler, "_determine_resource", _dynamodb_resource)
    # DynamoDB applies a conditional write atomically; moto's in-process backend does not
    # lock, so two threads could both pass one condition. Serialise its calls, as AWS does.
    dynamodb_call = DynamoHandler.call_action
    dynamodb_lock = threading.Lock()

    def atomic_dynamodb_call(self: Any) -> Any:
        with dynamodb_lock:
            return dynamodb_call(self)

    patch(DynamoHandler, "call_action", atomic_dynamodb_call)
    patch(StepFunctionResponse, "_determine_resource", _stepfunctions_resource)
    patch(LambdaResponse, "_determine_resource", _lambda_resource)

    def lambda_authorize(self: Any, resource: str = "*") -> None:
        # The API operation Invoke is the IAM action lambda:InvokeFunction.
        operation = self._get_action
        self._get_action = lambda: {"Invoke": "InvokeFunction"}.get(operation(), operation())
        try:
            ActionAuthenticatorMixin._authenticate_and_authorize_normal_action(self, resource)
        finally:
            del self._get_action

    patch(LambdaResponse, "_authenticate_and_authorize_normal_action", lambda_authorize)

    original_call = SecretsManagerResponse.call_action

    def secrets_call(self: Any) -> Any:
        arn = _secret_resource(self)
        if self._get_action() == "GetSecretValue" and arn != "*":
            secret = secretsmanager_backends[ACCOUNT][REGION].describe_secret(arn)
            key = getattr(secret, "kms_key_id", None)
            via = {"kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com"}
            if key and key.startswith("arn:") and not _allowed(self, "kms:Decrypt", key, via):
                body = json.dumps(
                    {
                        "__type": "AccessDeniedException",
                        "message": f"Access to KMS is not allowed (kms:Decrypt on {key})",
                    }
                )
                return 400, {"status": 400}, body
        return original_call(self)

    patch(SecretsManagerResponse, "_determine_resource", _secret_resource)
    patch(SecretsManagerResponse, "call_action", secrets_call)

    def missing_key_needs_list_bucket(name: str) -> None:
        original = getattr(S3Response, name)

        def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
            status, headers, body = original(self, *args, **kwargs)
            if status == 404 and settings.INITIAL_NO_AUTH_ACTION_COUNT == 0:
                bucket = self.bucket_name
                if not _allowed(self, "s3:ListBucket", f"arn:{PARTITION}:s3:::{bucket}"):
                    return 403, {}, ""  # a HEAD answer has no body: botocore says "403"
            return status, headers, body

        patch(S3Response, name, wrapped)

    missing_key_needs_list_bucket("head_object")

    # S3 URL-encodes keys in a listing asked with EncodingType=url (botocore always asks,
    # and decodes); moto ignores it, and its XML then breaks on a key with a control char.
    list_versions = S3Response.list_object_versions

    def url_encoded_listing(self: Any) -> Any:
        if self.querystring.get("encoding-type", [""])[0] != "url":
            return list_versions(self)
        serialize = self.serialized

        def encoded(action_result: Any) -> Any:
            result = action_result.result
            for name in ("Prefix", "KeyMarker", "NextKeyMarker"):
                if result.get(name):
                    result[name] = quote_plus(result[name], safe="/")
            for group in ("Versions", "DeleteMarkers"):
                for entry in result.get(group, []):
                    entry["Key"] = quote_plus(entry["Key"], safe="/")
            result["EncodingType"] = "url"
            return serialize(action_result)

        self.serialized = encoded
        try:
            return list_versions(self)
        finally:
            del self.serialized

    patch(S3Response, "list_object_versions", url_encoded_listing)

    # A version's tags are their own IAM action (S3 API Reference, GetObjectTagging: "To
    # retrieve tags of any other version, you need the s3:GetObjectVersionTagging
    # permission"); moto takes ?tagging&versionId for s3:GetObjectVersion, the bytes.
    set_action = S3Response._set_action
    version_tagging = {"GET": "GetObjectVersionTagging", "PUT": "PutObjectVersionTagging",
                       "DELETE": "DeleteObjectVersionTagging"}  # fmt: skip

    def tagging_of_a_version(self: Any, kind: str, method: str, querystring: Any) -> None:
        set_action(self, kind, method, querystring)
        if kind == "KEY" and "tagging" in querystring and "versionId" in querystring:
            self.data["Action"] = version_tagging.get(method, self.data["Action"])

    patch(S3Response, "_set_action", tagging_of_a_version)

    before = (settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count)
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    ActionAuthenticatorMixin.request_count = 0
    try:
        yield
    finally:
        settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count = before
        for cls, name, value in reversed(patches):
            if value is _NO_VALUE:
                delattr(cls, name)
            else:
                setattr(cls, name, value)


# -- what the tests make in moto, named as the template's resources ---------------------------
def _queue(name: str) -> Physical:
    return Physical(
        f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}",
        {"Arn": f"arn:{PARTITION}:sqs:{REGION}:{ACCOUNT}:{name}", "QueueName": name},
    )


def _table(name: str) -> Physical:
    return Physical(name, {"Arn": f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{name}"})


def _state_machine(name: str) -> Physical:
    arn = f"arn:{PARTITION}:states:{REGION}:{ACCOUNT}:stateMachine:{name}"
    return Physical(arn, {"Name": name})


def test_resources() -> dict[str, Physical]:
    """Each resource an IAM policy names, as the tests' fixtures create it (by these names)."""
    from localdev import provision as names

    return {
        "StateTable": _table(names.STATE_TABLE),
        "IdempotencyTable": _table(names.IDEMPOTENCY_TABLE),
        "UploadSessionsTable": _table(names.UPLOAD_SESSIONS_TABLE),
        "RateBudgetTable": _table(names.RATE_BUDGET_TABLE),
        # CloudFormation names the secret <name>-<6 random characters>; so does moto.
        "ImgixReaderSecret": Physical(
            f"arn:{PARTITION}:secretsmanager:{REGION}:{ACCOUNT}:secret:{names.READER_SECRET}-*",
            {},
        ),
        "EventsQueue": _queue(names.EVENTS_QUEUE),
        "EventsDeadLetterQueue": _queue(names.EVENTS_DLQ),
        "IngestQueue": _queue(names.INGEST_QUEUE),
        "IngestDeadLetterQueue": _queue(names.INGEST_DLQ),
        "UploadStateMachine": _state_machine(names.UPLOAD_STATE_MACHINE),
        "BackfillStateMachine": _state_machine("imgix-autoadder-backfill"),
        "UploaderFunction": Physical(names.UPLOADER_FUNCTION, {}),
        "BackfillFunction": Physical("imgix-autoadder-backfill", {}),
        "AuditorFunction": Physical("imgix-autoadder-auditor", {}),
        "OriginEventsRule": Physical(
            "origin-events", {"Arn": f"arn:{PARTITION}:events:{REGION}:{ACCOUNT}:rule/origin"}
        ),
    }


test_resources.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


FUNCTIONS = (
    "IndexerFunction",
    "UploadRouterFunction",
    "UploaderFunction",
    "BackfillFunction",
    "SourceManagerFunction",
    "AuditorFunction",
)


STATE_MACHINES = ("UploadStateMachine", "BackfillStateMachine", "AuditStateMachine")


def state_machine_identity(parameters: dict[str, str]) -> None:
    """moto's Step Functions calls services (Lambda invoke, s3:listObjectsV2) with the fixed
    key "ak"/"sk": that key becomes a user holding the template's state machine roles."""
    from moto.iam.models import iam_backends

    physical = test_resources()
    translated = sam_translate(parameters)
    documents = [
        document
        for machine in STATE_MACHINES
        for document in role_policies(machine, parameters, physical, translated)
    ]
    identity_user("state-machine-roles", documents)
    [key] = iam_backends[ACCOUNT][PARTITION].users["state-machine-roles"].access_keys
    key.access_key_id, key.secret_access_key = "ak", "sk"


def function_identities(parameters: dict[str, str], deployment: str = "") -> Identities:
    """One moto IAM user per function of the template, with that function's role policies.
    `deployment` names a second set, for the same template deployed with other parameters."""
    physical = test_resources()
    translated = sam_translate(parameters)
    return Identities(
        {
            function: identity_user(
                f"{function}-role{deployment}",
                role_policies(function, parameters, physical, translated),
            )
            for function in FUNCTIONS
        }
    )

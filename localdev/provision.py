"""Create in moto what template.yaml deploys, for the local run and the tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3

if TYPE_CHECKING:
    from mypy_boto3_s3.literals import EventType

STATE_TABLE = "imgix-autoadder-state"
IDEMPOTENCY_TABLE = "imgix-autoadder-idempotency"
UPLOAD_SESSIONS_TABLE = "imgix-autoadder-upload-sessions"
RATE_BUDGET_TABLE = "imgix-autoadder-rate-budget"
EVENTS_QUEUE = "imgix-autoadder-events"
EVENTS_DLQ = "imgix-autoadder-dlq"
INGEST_QUEUE = "imgix-autoadder-ingest"
INGEST_DLQ = "imgix-autoadder-ingest-dlq"
UPLOAD_STATE_MACHINE = "imgix-autoadder-upload-session"
UPLOADER_FUNCTION = "imgix-autoadder-uploader"
SECRET_NAME = "imgix-autoadder/api-key"  # noqa: S105 - a name, not a secret
READER_SECRET = "imgix-autoadder/imgix-reader"  # noqa: S105 - the managed Source key pair's secret name


@dataclass
class LocalStack:
    bucket: str
    queue_url: str
    queue_arn: str
    dlq_url: str
    state_table: str
    secret_name: str
    secret_arn: str = ""

    def env(self, api_base_url: str, source_ids: list[str]) -> dict[str, str]:
        """The environment template.yaml gives the indexer, pointed at local endpoints."""
        return {
            "IMGIX_API_KEY_SECRET": self.secret_name,
            "IMGIX_SOURCE_IDS": ",".join(source_ids),
            "IMGIX_API_BASE_URL": api_base_url,
            "STATE_TABLE": self.state_table,
            "IDEMPOTENCY_TABLE": IDEMPOTENCY_TABLE,
            "DEAD_LETTER_QUEUE_URL": self.dlq_url,
            "EVENTS_QUEUE_URL": self.queue_url,
            "RATE_BUDGET_TABLE": RATE_BUDGET_TABLE,
            "POWERTOOLS_SERVICE_NAME": "imgix-autoadder",
            "POWERTOOLS_METRICS_NAMESPACE": "ImgixAutoadder",
        }


def provision(
    bucket: str,
    api_key: str,
    notifications: bool = True,
    max_receive_count: int = 5,
    versioned: bool = True,
    tag_events: bool = False,
) -> LocalStack:
    """`versioned`: template.yaml creates the origin bucket versioned. moto sends no
    ObjectRemoved notification for a versioned bucket, so a run that relies on moto's own
    notifications for deletes (the local run) turns it off. `tag_events`: the tag changes
    too, as the template subscribes them with TagFields set."""
    s3, sqs, dynamodb = boto3.client("s3"), boto3.client("sqs"), boto3.client("dynamodb")
    s3.create_bucket(Bucket=bucket)
    if versioned:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    dlq_url = sqs.create_queue(QueueName=EVENTS_DLQ)["QueueUrl"]
    dlq_arn = _arn(sqs, dlq_url)
    queue_url = sqs.create_queue(
        QueueName=EVENTS_QUEUE,
        Attributes={
            "VisibilityTimeout": "370",
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}
            ),
        },
    )["QueueUrl"]
    queue_arn = _arn(sqs, queue_url)
    if notifications:
        events: list[EventType] = ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
        if tag_events:
            events.append("s3:ObjectTagging:*")
        s3.put_bucket_notification_configuration(
            Bucket=bucket,
            NotificationConfiguration={
                "QueueConfigurations": [{"QueueArn": queue_arn, "Events": events}]
            },
        )
    dynamodb.create_table(
        TableName=STATE_TABLE,
        KeySchema=[
            {"AttributeName": "bucket", "KeyType": "HASH"},
            {"AttributeName": "key", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "bucket", "AttributeType": "S"},
            {"AttributeName": "key", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    create_rate_budget_table(dynamodb)
    dynamodb.create_table(
        TableName=IDEMPOTENCY_TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    secret_arn = boto3.client("secretsmanager").create_secret(
        Name=SECRET_NAME, SecretString=json.dumps({"api_key": api_key})
    )["ARN"]
    return LocalStack(bucket, queue_url, queue_arn, dlq_url, STATE_TABLE, SECRET_NAME, secret_arn)


def create_rate_budget_table(dynamodb: Any = None, name: str = RATE_BUDGET_TABLE) -> None:
    """The shared rate budget (template.yaml RateBudgetTable)."""
    (dynamodb or boto3.client("dynamodb")).create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def _arn(sqs: Any, url: str) -> str:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return str(attributes["Attributes"]["QueueArn"])


@dataclass
class LocalIngest:
    bucket: str
    queue_url: str
    dlq_url: str
    state_machine_arn: str

    def env(self) -> dict[str, str]:
        return {
            "UPLOAD_STATE_MACHINE_ARN": self.state_machine_arn,
            "UPLOAD_SESSIONS_TABLE": UPLOAD_SESSIONS_TABLE,
            "UPLOAD_URL_HOST_PATTERN": r"^127\.0\.0\.1$",  # the emulator hands out loopback URLs
            "UPLOAD_URL_ALLOW_HTTP": "true",
            "UPLOAD_POLL_INTERVAL_SECONDS": "1",
            "INGEST_QUEUE_URL": self.queue_url,  # the router defers to it while imgix is down
        }

    def router_env(self) -> dict[str, str]:
        """The router's own DLQ is the ingest DLQ (template.yaml)."""
        return {**self.env(), "DEAD_LETTER_QUEUE_URL": self.dlq_url}


def provision_ingest(
    bucket: str, definition: str, uploader_arn: str, notifications: bool = True
) -> LocalIngest:
    """The ingest bucket (versioned), its queue and DLQ, the presigned-URL table and the
    upload-session state machine, as template.yaml makes them."""
    s3, sqs, dynamodb = boto3.client("s3"), boto3.client("sqs"), boto3.client("dynamodb")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    dlq_url = sqs.create_queue(QueueName=INGEST_DLQ)["QueueUrl"]
    queue_url = sqs.create_queue(
        QueueName=INGEST_QUEUE,
        Attributes={
            "VisibilityTimeout": "5400",
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": _arn(sqs, dlq_url), "maxReceiveCount": "5"}
            ),
        },
    )["QueueUrl"]
    if notifications:
        s3.put_bucket_notification_configuration(
            Bucket=bucket,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {"QueueArn": _arn(sqs, queue_url), "Events": ["s3:ObjectCreated:*"]}
                ]
            },
        )
    dynamodb.create_table(
        TableName=UPLOAD_SESSIONS_TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    arn = boto3.client("stepfunctions").create_state_machine(
        name=UPLOAD_STATE_MACHINE,
        definition=definition.replace("${UploaderFunctionArn}", uploader_arn),
        roleArn="arn:aws:iam::123456789012:role/imgix-autoadder-upload-session",
    )["stateMachineArn"]
    return LocalIngest(bucket, queue_url, dlq_url, arn)

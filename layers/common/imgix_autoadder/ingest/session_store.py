"""Where an open upload session's presigned URL waits between the state machine's steps."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from imgix_autoadder.ingest.job import PermanentUploadError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

SESSION_LIFETIME_S = 8 * 3600  # imgix: "The session and presigned URL will stay open for 8 hours"


class UploadSessionStore:
    """The presigned URL of each open session, kept out of Step Functions: execution input,
    output and history hold only the session id, and the URL's signature stays here."""

    def __init__(self, dynamodb: DynamoDBClient, table: str) -> None:
        self._ddb = dynamodb
        self._table = table

    def put(self, session_id: str, url: str) -> None:
        expires = int(time.time()) + SESSION_LIFETIME_S
        self._ddb.put_item(
            TableName=self._table,
            Item={"id": {"S": session_id}, "url": {"S": url}, "expires_at": {"N": str(expires)}},
        )

    def url(self, session_id: str) -> str:
        item = self._ddb.get_item(
            TableName=self._table, Key={"id": {"S": session_id}}, ConsistentRead=True
        ).get("Item")
        if not item:
            raise PermanentUploadError(f"no presigned URL stored for session {session_id}")
        return str(item["url"]["S"])

    def forget(self, session_id: str) -> None:
        self._ddb.delete_item(TableName=self._table, Key={"id": {"S": session_id}})

"""The stack's breaker state as one item of the rate budget's table, shared by every
environment (rate/breaker.py holds the rules)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from imgix_autoadder.rate.breaker import ITEM_TTL_S, OUTAGE_WINDOW_S, PROBE_S, BreakerState

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class DynamoBreakerStore:
    """The state as one item of the rate budget's table, shared by every environment."""

    def __init__(self, dynamodb: DynamoDBClient, table: str, account: str) -> None:
        self._ddb = dynamodb
        self._table = table
        self._key = {"id": {"S": f"{account}#breaker"}}

    def read(self) -> BreakerState:
        item = self._ddb.get_item(TableName=self._table, Key=self._key, ConsistentRead=True)
        return _state_of(item.get("Item", {}))

    def add_outage(self, now: float) -> BreakerState:
        values = {":one": {"N": "1"}, ":now": {"N": f"{now:.3f}"}, ":ttl": _ttl()}
        try:  # the first of a new run: the count starts again
            answer = self._ddb.update_item(
                TableName=self._table,
                Key=self._key,
                UpdateExpression="SET failures = :one, last_outage = :now, expires_at = :ttl",
                ConditionExpression="attribute_not_exists(last_outage) OR last_outage < :stale",
                ExpressionAttributeValues={
                    **values,
                    ":stale": {"N": f"{now - OUTAGE_WINDOW_S:.3f}"},
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            answer = self._ddb.update_item(
                TableName=self._table,
                Key=self._key,
                UpdateExpression="ADD failures :one SET last_outage = :now, expires_at = :ttl",
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        return _state_of(answer.get("Attributes", {}))

    def open(self, state: BreakerState, now: float) -> bool:
        return self._conditional(
            "SET open_until = :until, open_s = :open_s, expires_at = :ttl REMOVE probe_until",
            "attribute_not_exists(open_until) OR open_until <= :now",
            {
                ":until": {"N": f"{state.open_until:.3f}"},
                ":open_s": {"N": f"{state.open_s:.3f}"},
                ":now": {"N": f"{now:.3f}"},
                ":ttl": _ttl(),
            },
        )

    def claim_probe(self, now: float) -> bool:
        return self._conditional(
            "SET probe_until = :probe, expires_at = :ttl",
            "open_until <= :now AND (attribute_not_exists(probe_until) OR probe_until <= :now)",
            {
                ":probe": {"N": f"{now + PROBE_S:.3f}"},
                ":now": {"N": f"{now:.3f}"},
                ":ttl": _ttl(),
            },
        )

    def close(self) -> None:
        self._ddb.update_item(
            TableName=self._table,
            Key=self._key,
            UpdateExpression="SET failures = :zero, expires_at = :ttl "
            "REMOVE open_until, open_s, probe_until",
            ExpressionAttributeValues={":zero": {"N": "0"}, ":ttl": _ttl()},
        )

    def _conditional(self, update: str, condition: str, values: dict[str, dict[str, str]]) -> bool:
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key=self._key,
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True


def _ttl() -> dict[str, str]:
    return {"N": str(int(time.time()) + ITEM_TTL_S)}


def _state_of(item: Mapping[str, Any]) -> BreakerState:
    def number(name: str) -> float:
        return float(item[name]["N"]) if name in item else 0.0

    return BreakerState(
        failures=int(number("failures")),
        open_until=number("open_until"),
        open_s=number("open_s"),
        probe_until=number("probe_until"),
    )

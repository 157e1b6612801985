#!/usr/bin/env python3
"""An SNS topic with an SQS queue subscribed to it, on the server AWS_ENDPOINT_URL names
(moto in the tests), to read back what a state machine published.

    sns_queue.py create TOPIC_NAME         -> {"topic_arn": ..., "queue_url": ...}
    sns_queue.py receive QUEUE_URL [--wait SECONDS] [--at-least N]
                                           -> [{"subject": ..., "message": ...}, ...]

`receive` drains the queue (deleting what it read), unwrapping the SNS envelope; it
keeps polling until it has N messages or SECONDS pass. Exits 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import boto3


def clients():
    kw = {
        "endpoint_url": os.environ["AWS_ENDPOINT_URL"],
        "region_name": os.environ.get("AWS_REGION", "us-west-2"),
    }
    return boto3.client("sns", **kw), boto3.client("sqs", **kw)


def create(name: str) -> dict:
    sns, sqs = clients()
    topic_arn = sns.create_topic(Name=name)["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"{name}-notifications")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return {"topic_arn": topic_arn, "queue_url": queue_url}


def receive(queue_url: str, wait: float, at_least: int) -> list:
    _, sqs = clients()
    out = []
    deadline = time.monotonic() + wait
    while True:
        got = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])
        for m in got:
            envelope = json.loads(m["Body"])
            out.append(
                {
                    "subject": envelope.get("Subject"),
                    "message": envelope.get("Message"),
                    "topic_arn": envelope.get("TopicArn"),
                }
            )
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
        if got:
            continue
        if len(out) >= at_least or time.monotonic() >= deadline:
            return out
        time.sleep(0.2)


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create")
    c.add_argument("name")
    r = sub.add_parser("receive")
    r.add_argument("queue_url")
    r.add_argument("--wait", type=float, default=0.0)
    r.add_argument("--at-least", type=int, default=0)
    a = p.parse_args()
    if a.cmd == "create":
        print(json.dumps(create(a.name)))
    else:
        print(json.dumps(receive(a.queue_url, a.wait, a.at_least)))


if __name__ == "__main__":
    try:
        main()
    except KeyError as e:
        print(f"error: {e} is not set", file=sys.stderr)
        sys.exit(2)

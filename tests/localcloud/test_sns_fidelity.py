"""SNS as the failure notices meet it: the Subject check localcloud.fidelity adds to moto, and the
throttling fault localcloud.faults injects, over real HTTP (test_fidelity.py's style)."""

import uuid
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.backends import get_backend

from localcloud import fidelity
from localcloud.faults import sns_publish_refused
from tests.support import ACCOUNT_ID, REGION

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

ONE_ATTEMPT = Config(retries={"mode": "standard", "total_max_attempts": 1})


@pytest.fixture
def sns(moto_endpoint: str) -> "SNSClient":
    client: SNSClient = boto3.client(
        "sns", region_name=REGION, endpoint_url=moto_endpoint, config=ONE_ATTEMPT
    )
    return client


@pytest.fixture
def topic(sns: "SNSClient") -> str:
    return sns.create_topic(Name=f"notices-{uuid.uuid4().hex[:12]}")["TopicArn"]


def published_subjects(topic_arn: str) -> list[str | None]:
    """The Subjects moto's topic recorded as published, oldest first."""
    backend = get_backend("sns")[ACCOUNT_ID][REGION]
    return [subject for _, _, subject, *_ in backend.topics[topic_arn].sent_notifications]


@pytest.mark.parametrize(
    "subject",
    [
        "Rotation échouée",
        "two\nlines",
        "carriage\rreturn",
        "tab\there",
        "x" * (fidelity.SNS_SUBJECT_LIMIT + 1),
    ],
    ids=["non-ascii", "newline", "carriage-return", "tab", "101-characters"],
)
def test_publish_refuses_a_subject_sns_would_refuse(
    sns: "SNSClient", topic: str, subject: str
) -> None:
    """moto checked only the length. SNS refuses a Subject that is not printable ASCII on one
    line with InvalidParameter, before anything is delivered."""
    with pytest.raises(ClientError) as refused:
        sns.publish(TopicArn=topic, Message="{}", Subject=subject)

    error = refused.value.response["Error"]
    assert error["Code"] == "InvalidParameter"
    assert error["Message"] == "Invalid parameter: Subject"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert published_subjects(topic) == []


@pytest.mark.parametrize(
    "subject",
    ["Google token rotation failed at createSecret (google/access-token)", "x" * 100, None],
    ids=["plain", "100-characters", "none"],
)
def test_publish_accepts_a_printable_ascii_subject_of_up_to_100_characters(
    sns: "SNSClient", topic: str, subject: str | None
) -> None:
    if subject is None:
        sns.publish(TopicArn=topic, Message="{}")
    else:
        sns.publish(TopicArn=topic, Message="{}", Subject=subject)

    assert published_subjects(topic) == [subject]


def test_the_throttling_fault_refuses_n_publishes_to_its_topic_only(
    sns: "SNSClient", topic: str
) -> None:
    other = sns.create_topic(Name=f"other-{uuid.uuid4().hex[:12]}")["TopicArn"]

    with sns_publish_refused(topic, times=2) as refusals:
        refused = []
        for attempt in range(2):
            with pytest.raises(ClientError) as throttled:
                sns.publish(TopicArn=topic, Message="{}", Subject=f"attempt {attempt}")
            refused.append(throttled.value.response)
        sns.publish(TopicArn=topic, Message="{}", Subject="attempt 2")
        sns.publish(TopicArn=other, Message="{}", Subject="elsewhere")

    assert [r["Error"]["Code"] for r in refused] == ["Throttled", "Throttled"]
    assert [r["ResponseMetadata"]["HTTPStatusCode"] for r in refused] == [429, 429]
    assert (refusals.refused, refusals.delivered) == (2, 1)
    assert published_subjects(topic) == ["attempt 2"]
    assert published_subjects(other) == ["elsewhere"]
    # Once the fault ends, SNS publishes as before (the Subject check still applies).
    sns.publish(TopicArn=topic, Message="{}", Subject="after")
    assert published_subjects(topic) == ["attempt 2", "after"]

"""Every notice names an entry of docs/runbook.md that exists, and every entry there is named by
some notice or alarm (rotation_core.runbook)."""

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from localcloud.template import PROJECT_ROOT
from rotation_core.errors import RotationError, error_names
from rotation_core.failure_notice import (
    STEP_LABELS,
    FailureReport,
    Notice,
    StreakNote,
    compose_notice,
    compose_recovered,
    compose_refused,
    compose_unscheduled,
    compose_unverified,
)
from rotation_core.refresh import FailureStreak, NoticeKind
from rotation_core.runbook import (
    ALARM_ENTRIES,
    ERROR_ENTRIES,
    RUNBOOK_PAGE,
    STEP_LABEL_ENTRIES,
    NoticeEntry,
    every_anchor,
    failure_entry,
    runbook_link,
)
from rotation_core.secrets import SecretDescription
from rotation_core.steps import STEP_NAMES
from tests.runbook_page import ENTRY_HEADING, RUNBOOK, entries

PARTS = ("**What it means.**", "**What is still fine.**", "**Fix.**", "**Confirm.**")
ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:google/access-token-AbCdEf"
EXECUTION = "arn:aws:states:eu-west-1:123456789012:execution:rotation:manual-1"
VERSION = "5f0d1c2b-3a4e-4f60-9b8a-7c6d5e4f3a21"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
OTHER_ERRORS = (
    "Runtime.ExitError",
    "Sandbox.Timedout",
    "States.Timeout",
    "Lambda.Unknown",
    "Scheduler.ResourceNotFoundException",
)
"""Errors a failed execution can carry that are not the rotation's own."""


def secret() -> SecretDescription:
    return SecretDescription(ARN, "google/access-token", True, {VERSION: ("AWSCURRENT",)}, {})


def failed(step: str, error: str, streak: StreakNote | None = None) -> Notice:
    report = FailureReport.from_payload(
        {
            "Request": {"SecretId": ARN, "ClientRequestToken": VERSION},
            "FailedStep": step,
            "Failure": {"Error": error, "Cause": "why"},
            "ExecutionArn": EXECUTION,
        }
    )
    return compose_notice(report, secret(), streak)


def runbook_of(notice: Notice) -> Any:
    return json.loads(notice.message)["Runbook"]


def test_every_entry_heading_is_plain_so_github_and_mkdocs_make_the_same_anchor() -> None:
    titles = [heading["title"] for heading in ENTRY_HEADING.finditer(RUNBOOK)]

    assert titles
    assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9 ]*", title) for title in titles), titles
    assert len(set(entries())) == len(titles), "two entries share an anchor"


def test_every_anchor_a_notice_or_alarm_names_is_an_entry_and_no_entry_is_orphaned() -> None:
    assert set(entries()) == every_anchor()


@pytest.mark.parametrize("anchor", sorted(every_anchor()))
def test_each_entry_says_what_it_means_what_is_fine_the_fix_and_how_to_confirm(
    anchor: str,
) -> None:
    body = entries()[anchor]

    positions = [body.find(part) for part in PARTS]
    assert all(position >= 0 for position in positions), (anchor, positions)
    assert positions == sorted(positions), anchor


def test_every_error_a_step_raises_on_purpose_has_its_own_entry() -> None:
    assert {kind.__name__ for kind in ERROR_ENTRIES} == error_names(RotationError)
    assert len(set(ERROR_ENTRIES.values())) == len(ERROR_ENTRIES)


@pytest.mark.parametrize("error", sorted(error_names(RotationError)))
@pytest.mark.parametrize("kind", [NoticeKind.FIRST, NoticeKind.REMINDER])
def test_a_failure_notice_first_or_reminder_names_its_errors_entry(
    error: str, kind: NoticeKind
) -> None:
    streak = FailureStreak(NOW, 1 if kind is NoticeKind.FIRST else 5, NOW)
    note = StreakNote(kind, streak, NOW + timedelta(minutes=1), recorded=True)

    for step in STEP_NAMES:
        link = runbook_of(failed(step, error, note))

        assert link == runbook_link(error.lower())
        assert link.removeprefix(f"{RUNBOOK_PAGE}#") in entries()


@pytest.mark.parametrize("error", OTHER_ERRORS)
def test_an_error_that_is_not_the_rotations_own_names_the_other_errors_entry(error: str) -> None:
    assert runbook_of(failed("finishSecret", error)) == runbook_link(NoticeEntry.OTHER_ERROR)


def test_every_step_label_that_is_no_step_has_its_entry_whatever_the_error() -> None:
    labels = set(STEP_LABELS) - set(STEP_NAMES)

    assert labels <= set(STEP_LABEL_ENTRIES)
    for label in labels:
        for error in ("InvalidExecutionInput", "UnknownRotationStep", "ConfigurationError"):
            assert runbook_of(failed(label, error)) == runbook_link(STEP_LABEL_ENTRIES[label])


def test_a_failed_schedule_of_the_next_refresh_names_its_entry() -> None:
    report = FailureReport.from_payload(
        {
            "Request": {"SecretId": ARN, "ClientRequestToken": VERSION},
            "FailedStep": "scheduleNextRotation",
            "Failure": {"Error": "Scheduler.ResourceNotFoundException", "Cause": "no group"},
            "ExecutionArn": EXECUTION,
        }
    )

    notice = compose_unscheduled(report, secret())

    assert runbook_of(notice) == runbook_link(NoticeEntry.NEXT_REFRESH_NOT_SCHEDULED)
    assert failure_entry("scheduleNextRotation", "Scheduler.ResourceNotFoundException") == (
        "next-refresh-not-scheduled"
    )


def test_the_notices_after_success_and_the_sweeps_name_their_entries() -> None:
    streak = FailureStreak(NOW - timedelta(minutes=10), 3, NOW - timedelta(minutes=10))
    expires = NOW + timedelta(hours=1)
    due = NOW + timedelta(minutes=45)

    recovered = compose_recovered(secret(), streak, NOW, expires, due)
    unverified = compose_unverified(secret(), VERSION, None, NOW, expires, due)
    refused = compose_refused(ARN, "google/access-token", VERSION, expires, NOW)

    assert runbook_of(recovered) == runbook_link(NoticeEntry.RECOVERED)
    assert runbook_of(unverified) == runbook_link(NoticeEntry.PROMOTED_UNVERIFIED)
    assert runbook_of(refused) == runbook_link(NoticeEntry.TOKEN_REFUSED)


def test_the_state_machines_fixed_notice_names_its_entry() -> None:
    asl = json.loads((PROJECT_ROOT / "statemachine" / "rotation.asl.json").read_text())

    fallback = asl["States"]["DescribeFailureFallback"]["Parameters"]

    assert fallback["Runbook"] == runbook_link(NoticeEntry.NOTICE_NOT_COMPOSED)


def test_each_alarms_description_names_its_entry() -> None:
    class Loader(yaml.SafeLoader):
        pass

    # CloudFormation's short forms (!Ref, !Sub, ...) are tags PyYAML does not know.
    Loader.add_multi_constructor("!", lambda _loader, _suffix, _node: None)
    resources = yaml.load((PROJECT_ROOT / "template.yaml").read_text(), Loader)["Resources"]

    alarms = {
        name: resource["Properties"]["AlarmDescription"]
        for name, resource in resources.items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    }

    assert set(alarms) == set(ALARM_ENTRIES)
    for name, description in alarms.items():
        assert f"Runbook: {runbook_link(ALARM_ENTRIES[name])}" in " ".join(description.split())

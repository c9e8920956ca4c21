"""localcloud.fidelity patches moto's private methods and module attributes: a moto upgrade that
moves or changes one of them must fail the suite loudly, never leave moto silently uncorrected."""

import json
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import moto
import pytest

from localcloud import fidelity
from localcloud.fidelity import MotoChangedError, PatchTarget

ROOT = Path(__file__).resolve().parents[2]
EXPECTED_TARGETS = {
    "moto.awslambda.models.LambdaFunction.invoke",
    "moto.awslambda.models.LambdaBackend.invoke",
    "moto.secretsmanager.models.SecretsManagerBackend.rotate_secret",
    "moto.secretsmanager.models.SecretsManagerBackend._check_with_existing_secrets_and_versions",
    "moto.secretsmanager.models.FakeSecret.default_version_id",
    "moto.secretsmanager.models.SecretsManagerBackend.list_secret_version_ids",
    "moto.secretsmanager.models.FakeSecret.reset_default_version",
    "moto.secretsmanager.models.FakeSecret.to_dict",
    "moto.stepfunctions.models.StepFunctionBackend.start_execution",
    "moto.stepfunctions.parser.models.StepFunctionsParserBackend.start_execution",
    "moto.stepfunctions.parser.asl.component.common.retry.retrier_decl.time",
    "moto.secretsmanager.models.time",
    "moto.sns.models.SNSBackend.publish",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service."
    "state_task_service_aws_sdk.StateTaskServiceAwsSdk._from_error",
    "moto.scheduler.responses.EventBridgeSchedulerResponse.update_schedule",
    "moto.scheduler.models.EventBridgeSchedulerBackend.create_schedule",
    "moto.stepfunctions.parser.backend.execution_worker.ExecutionWorker._get_evaluation_entrypoint",
}


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh interpreter, where moto is as installed (this session's is patched)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_apply_checked_and_replaced_every_target() -> None:
    """Each (owner, attribute) apply() replaced was checked first, is one of PATCH_TARGETS, still
    resolves, and now holds the correction; what it held before passes the check (so the checks
    describe the moto the suite runs on)."""
    patched = fidelity.patched_targets()

    assert {target.name for target in fidelity.PATCH_TARGETS} == EXPECTED_TARGETS
    assert set(patched) == set(fidelity.PATCH_TARGETS)
    for target, moto_own in patched.items():
        target.check(moto_own)
        assert target.resolve() is not moto_own, f"{target.name} is not patched"


def test_the_installed_moto_passes_every_check_before_it_is_patched() -> None:
    """In a fresh interpreter: check_moto() accepts the moto installed, and apply() patches
    exactly the checked targets."""
    result = run_python(
        """
        from localcloud import fidelity
        checked = fidelity.check_moto()
        fidelity.apply()
        assert set(fidelity.patched_targets()) == set(checked), "patched unchecked targets"
        print("\\n".join(target.name for target in checked))
        """
    )

    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == EXPECTED_TARGETS


CHANGES = {
    "method-removed": (
        "del models.SecretsManagerBackend.rotate_secret",
        "moto.secretsmanager.models.SecretsManagerBackend.rotate_secret is missing, not a function",
    ),
    "parameters-changed": (
        "models.FakeSecret.reset_default_version = lambda self, version: None",
        "moto.secretsmanager.models.FakeSecret.reset_default_version takes ('self', 'version')",
    ),
    "now-a-property": (
        "models.FakeSecret.default_version_id = property(lambda self: None)",
        "moto.secretsmanager.models.FakeSecret.default_version_id is a class attribute",
    ),
    "no-longer-used": (
        "models.FakeSecret.to_short_dict = lambda self, version_id=None: version_id",
        "moto.secretsmanager.models.FakeSecret.default_version_id is no longer used by "
        "moto.secretsmanager.models.FakeSecret.to_short_dict",
    ),
}
"""moto changed as an upgrade might change it: the change, and what the error must say."""


@pytest.fixture(scope="module")
def refusals() -> dict[str, str]:
    """apply()'s error for each of CHANGES, each made alone to a fresh moto and undone after, in
    one fresh interpreter; it fails if apply() accepts a change or patches anything."""
    cases = {case: change for case, (change, _) in CHANGES.items()}
    result = run_python(
        f"""
        import json
        from moto.awslambda.models import LambdaFunction
        from moto.secretsmanager import models
        from localcloud import fidelity

        lambda_invoke = LambdaFunction.invoke
        pristine = {{name: dict(vars(owner)) for name, owner in
                    (("backend", models.SecretsManagerBackend), ("secret", models.FakeSecret))}}
        refusals = {{}}
        for case, change in {cases!r}.items():
            exec(change)
            try:
                fidelity.apply()
            except fidelity.MotoChangedError as error:
                refusals[case] = str(error)
            else:
                raise SystemExit(f"apply() accepted a changed moto: {{case}}")
            assert fidelity.patched_targets() == {{}}, f"patched: {{case}}"
            assert LambdaFunction.invoke is lambda_invoke, f"half patched: {{case}}"
            for name, owner in (("backend", models.SecretsManagerBackend),
                                ("secret", models.FakeSecret)):
                for attribute in set(vars(owner)) - set(pristine[name]):
                    delattr(owner, attribute)
                for attribute, value in pristine[name].items():
                    if vars(owner).get(attribute) is not value:
                        setattr(owner, attribute, value)
        print(json.dumps(refusals))
        """
    )
    assert result.returncode == 0, result.stdout + result.stderr
    answer: dict[str, str] = json.loads(result.stdout)
    return answer


@pytest.mark.parametrize("case", CHANGES)
def test_a_changed_moto_fails_apply_loudly_and_is_left_unpatched(
    refusals: dict[str, str], case: str
) -> None:
    """apply() raises MotoChangedError naming the moto version and the attribute, and patches
    nothing (not even the targets checked before the changed one)."""
    message = refusals[case]

    assert f"cannot correct moto {moto.__version__}" in message
    assert CHANGES[case][1] in message


class _Owner:
    """Stands in for a moto class, for the checks' own cases."""

    def invoke(self, body: str) -> str:
        return body


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        (PatchTarget(_Owner, "invoke", ("self", "body", "headers")), "takes ('self', 'body')"),
        (PatchTarget(_Owner, "run", ("self",)), "run is missing, not a function"),
        (PatchTarget(_Owner, "invoke", module="time"), ", not the module time"),
        (
            PatchTarget(types.ModuleType("retrier"), "time", module="time"),
            "retrier.time is missing, not the module time",
        ),
        (
            PatchTarget(_Owner, "state", used_by=((_Owner, "invoke"),)),
            "state is no longer used by",
        ),
        (
            PatchTarget(_Owner, "state", used_by=((_Owner, "gone"),)),
            "gone",
        ),
    ],
    ids=[
        "parameters",
        "missing-method",
        "not-a-module",
        "missing-module-attribute",
        "attribute-unread",
        "reader-gone",
    ],
)
def test_each_kind_of_check_names_what_changed(target: PatchTarget, problem: str) -> None:
    with pytest.raises(MotoChangedError, match=f"moto {moto.__version__}") as raised:
        fidelity.check_moto((target,))

    assert problem in str(raised.value)
    assert target.name in str(raised.value)

"""The single-Lambda rotation baseline, a benchmark fixture that template.yaml never deploys.

AWS's rotation-template shape: one function that Secrets Manager invokes once per step, each
invocation running its step in-process. It runs the stack's own step handlers (the same parsing,
core, Google client and Secrets Manager gateway as each step Lambda), so that the benchmark
compares the orchestration alone: no Step Functions, no entry Lambda waiting, no refresh
schedule."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from lambda_adapter.step_handler import StepHandler, step_handler
from rotation_core.rotation_request import RotationRequest
from rotation_core.steps import Step

# One handler per step, built at import as each step Lambda builds its own; in this one process
# they share the Rotation that the adapter builds on first use and keeps warm.
_STEP_HANDLERS: dict[Step, StepHandler] = {step: step_handler(step) for step in Step}


def lambda_handler(event: object, context: LambdaContext) -> dict[str, object]:
    """Secrets Manager's event names the step: validated as the entry Lambda validates it (Step
    required, Manual refused), then handed whole to that step's handler."""
    step = RotationRequest.from_rotation_event(event).step
    # from_rotation_event refuses an event without a Step; the type cannot say so.
    assert step is not None
    return _STEP_HANDLERS[step](event, context)

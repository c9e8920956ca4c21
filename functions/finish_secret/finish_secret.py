"""The finishSecret step Lambda: promotes the tested token version to AWSCURRENT."""

from lambda_adapter.step_handler import step_handler
from rotation_core.steps import Step

lambda_handler = step_handler(Step.FINISH)

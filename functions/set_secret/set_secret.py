"""The setSecret step Lambda: checks that the pending token version exists and is well formed."""

from lambda_adapter.step_handler import step_handler
from rotation_core.steps import Step

lambda_handler = step_handler(Step.SET)

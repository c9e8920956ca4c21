"""The testSecret step Lambda: proves with Google that the pending token is fit for use."""

from lambda_adapter.step_handler import step_handler
from rotation_core.steps import Step

lambda_handler = step_handler(Step.TEST)

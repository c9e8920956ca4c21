"""The createSecret step Lambda: mints a Google access token and stores it as AWSPENDING."""

from lambda_adapter.step_handler import step_handler
from rotation_core.steps import Step

lambda_handler = step_handler(Step.CREATE)

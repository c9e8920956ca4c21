"""The four rotation step names, in their own module so the entry Lambda imports no Google code."""

from enum import StrEnum
from typing import Final


class Step(StrEnum):
    CREATE = "createSecret"
    SET = "setSecret"
    TEST = "testSecret"
    FINISH = "finishSecret"


STEP_NAMES: Final = tuple(step.value for step in Step)

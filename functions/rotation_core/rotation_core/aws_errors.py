"""How an AWS error is told apart: its code, read one way wherever a ClientError is handled."""

from botocore.exceptions import ClientError


def error_code(error: ClientError) -> str:
    """The error's code (ThrottlingException, ResourceNotFoundException, ...), or '' if none."""
    return str(error.response.get("Error", {}).get("Code", ""))

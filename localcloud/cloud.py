"""The whole stack on one machine: moto for AWS, warm worker processes for Lambda, an emulator for
Google, and a deployment made from template.yaml itself through the AWS APIs."""

import io
import json
import logging
import os
import threading
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from graphlib import TopologicalSorter
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import boto3
import urllib3
from botocore.config import Config
from moto.awslambda.models import LambdaFunction
from moto.backends import get_backend
from moto.server import ThreadedMotoServer

from localcloud import fidelity
from localcloud.google_emulator import GoogleEmulator, ServiceAccountKey
from localcloud.intrinsics import Resolver, TemplateError, references
from localcloud.lambda_runtime import FunctionWorker, LambdaRuntime
from localcloud.template import FunctionSpec, Template, load_template

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_SESSION_TOKEN": "local",
}
ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/local-cloud"
LogSink = Callable[[str, str], None]


@dataclass
class Deployment:
    """What a local deploy created: physical ids and ARNs by logical id, as stack outputs would."""

    stack_name: str
    refs: dict[str, str]
    attributes: dict[tuple[str, str], str]
    functions: dict[str, str] = field(default_factory=dict)
    """Logical id → deployed function name."""

    @property
    def token_secret_arn(self) -> str:
        return self.refs["TokenSecret"]

    @property
    def key_secret_arn(self) -> str:
        return self.refs["ServiceAccountKeySecret"]

    @property
    def state_machine_arn(self) -> str:
        return self.refs["RotationStateMachine"]

    @property
    def topic_arn(self) -> str:
        return self.refs["FailureTopic"]


@dataclass(frozen=True)
class Invocation:
    """One Lambda invocation as the local cloud saw it, for benchmarks and assertions."""

    function_name: str
    started: float
    ended: float
    duration_ms: float
    cold_start: bool
    init_ms: float | None
    error_type: str | None
    result: object


@dataclass
class LogBook:
    """Every line a function printed, kept so tests can scan them and the demo can show them."""

    lines: list[tuple[str, str]] = field(default_factory=list)
    echo: LogSink | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, function_name: str, line: str) -> None:
        with self._lock:
            self.lines.append((function_name, line))
        if self.echo is not None:
            self.echo(function_name, line)

    def text(self) -> str:
        with self._lock:
            return "\n".join(line for _, line in self.lines)


class LocalCloud:
    """Start it, deploy the template, then use `client(...)` as you would against AWS."""

    def __init__(self, *, sleep_retries: bool = True, google_timeout_seconds: float = 5.0) -> None:
        self.google = GoogleEmulator()
        self.logs = LogBook()
        self.invocations: list[Invocation] = []
        self.runtime = LambdaRuntime()
        self.corrections = fidelity.apply()
        self.corrections.sleep_retries = sleep_retries
        self._google_timeout = google_timeout_seconds
        self._server: ThreadedMotoServer | None = None
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()
        self.endpoint = ""
        self.deployment: Deployment | None = None

    def start(self) -> Self:
        # moto's server logs every request; the demo's output is the rotation, not HTTP.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        # moto's ASL interpreter logs every caught failure at ERROR, Catch-handled ones included.
        logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)
        self.google.start()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self._clients.clear()
        # moto's ASL interpreter reaches Lambda and SNS at localhost:$MOTO_PORT.
        os.environ["MOTO_PORT"] = str(port)
        urllib3.PoolManager().request(
            "POST",
            f"{self.endpoint}/moto-api/config",
            json={"stepfunctions": {"execute_state_machine": True}},
        )
        self.corrections.dispatch = self._dispatch
        return self

    def stop(self) -> None:
        self.runtime.stop_all()
        if self._server is not None:
            self._server.stop()
        self.google.stop()
        self.corrections.dispatch = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def client_environment(self) -> dict[str, str]:
        """What to export so that boto3 and the AWS CLI talk to this cloud."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            **FAKE_CREDENTIALS,
        }

    def client(self, service: str, **config: Any) -> Any:
        """A client of this cloud. Without `config`, one per service, made once and shared
        (clients are thread-safe, and making one costs tens of milliseconds)."""
        if config:
            return self._make_client(service, config)
        with self._clients_lock:
            if service not in self._clients:
                self._clients[service] = self._make_client(service, {})
            return self._clients[service]

    def _make_client(self, service: str, config: Mapping[str, Any]) -> Any:
        # No botocore retries: a retried RotateSecret would start a second rotation.
        settings = {"retries": {"total_max_attempts": 1}, "read_timeout": 300, **config}
        make_client: Any = boto3.client
        return make_client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
            config=Config(**settings),
        )

    def deploy(
        self,
        parameters: Mapping[str, str] | None = None,
        stack_name: str = "google-token-rotation",
        environment_overrides: Mapping[str, Mapping[str, str]] | None = None,
    ) -> Deployment:
        """Deploys template.yaml. `environment_overrides` (logical id → variables) lets tests
        shorten waits, e.g. the entry Lambda's DEADLINE_MARGIN_SECONDS."""
        ensure_lambda_role(self.client("iam"))
        deployer = _Deployer(
            self, load_template(), stack_name, parameters or {}, environment_overrides or {}
        )
        self.deployment = deployer.deploy()
        return self.deployment

    def store_service_account_key(self, key: ServiceAccountKey) -> None:
        """What a user does after deploying: put the downloaded key file into its secret."""
        assert self.deployment is not None
        self.client("secretsmanager").put_secret_value(
            SecretId=self.deployment.key_secret_arn,
            SecretString=json.dumps(key.key_file(GoogleEmulator.GOOGLE_TOKEN_AUDIENCE)),
        )

    def begin_rotation(self, secret_id: str, token: str) -> None:
        fidelity.begin_rotation(self.secrets_backend(), secret_id, token)

    def _dispatch(self, function: LambdaFunction, payload: Any) -> tuple[bytes, str | None]:
        started = time.time()
        result = self.runtime.worker(function.function_name).invoke(payload)
        error_type = None if result.error is None else str(result.error["errorType"])
        self.invocations.append(
            Invocation(
                function_name=function.function_name,
                started=started,
                ended=time.time(),
                duration_ms=result.duration_ms,
                cold_start=result.cold_start,
                init_ms=result.init_ms,
                error_type=error_type,
                result=result.payload,
            )
        )
        if result.error is not None:
            return json.dumps(result.error).encode(), error_type
        return json.dumps(result.payload).encode(), None

    def secrets_backend(self) -> Any:
        return get_backend("secretsmanager")[ACCOUNT_ID][REGION]


class _Deployer:
    """CloudFormation's job for the resource types template.yaml uses, in dependency order."""

    def __init__(
        self,
        cloud: LocalCloud,
        template: Template,
        stack_name: str,
        overrides: Mapping[str, str],
        environment_overrides: Mapping[str, Mapping[str, str]],
    ) -> None:
        self.cloud = cloud
        self.template = template
        self.stack_name = stack_name
        document = template.document
        parameters = {
            name: str(overrides.get(name, spec.get("Default", "")))
            for name, spec in document.get("Parameters", {}).items()
        }
        unknown = set(overrides) - set(parameters)
        if unknown:
            raise TemplateError(f"unknown parameters: {', '.join(sorted(unknown))}")
        self.resolver = Resolver(
            parameters=parameters,
            pseudo={
                "AWS::Region": REGION,
                "AWS::AccountId": ACCOUNT_ID,
                "AWS::Partition": "aws",
                "AWS::StackName": stack_name,
            },
            conditions=document.get("Conditions", {}),
        )
        self.functions = template.functions()
        self.function_names: dict[str, str] = {}
        self.environment_overrides = environment_overrides

    def deploy(self) -> Deployment:
        self._check_rules()
        resources = self.template.resources
        order = TopologicalSorter(
            {
                logical_id: (references(resource) | set(_depends_on(resource))) & set(resources)
                for logical_id, resource in resources.items()
            }
        ).static_order()
        creators: dict[str, Callable[[str, Any], None]] = {
            "AWS::Serverless::LayerVersion": self._deploy_layer,
            "AWS::SecretsManager::Secret": self._deploy_secret,
            "AWS::SNS::Topic": self._deploy_topic,
            "AWS::SNS::Subscription": self._deploy_subscription,
            "AWS::Logs::LogGroup": self._deploy_log_group,
            "AWS::Serverless::Function": self._deploy_function,
            "AWS::Serverless::StateMachine": self._deploy_state_machine,
            "AWS::Lambda::Permission": self._deploy_permission,
            "AWS::SecretsManager::RotationSchedule": self._deploy_rotation_schedule,
            "AWS::CloudWatch::Alarm": self._deploy_alarm,
        }
        for logical_id in order:
            resource = resources[logical_id]
            if "Condition" in resource and not self.resolver.condition(resource["Condition"]):
                continue
            create = creators.get(resource["Type"])
            if create is None:
                raise TemplateError(f"{logical_id}: cannot deploy {resource['Type']} locally")
            create(logical_id, self.resolver.value(resource.get("Properties", {})))
        return Deployment(
            self.stack_name, self.resolver.refs, self.resolver.attributes, self.function_names
        )

    def _check_rules(self) -> None:
        for name, rule in self.template.document.get("Rules", {}).items():
            for assertion in rule.get("Assertions", []):
                if not self.resolver.value(assertion["Assert"]):
                    raise TemplateError(
                        f"rule {name}: {' '.join(assertion['AssertDescription'].split())}"
                    )

    def _name(self, logical_id: str) -> str:
        return f"{self.stack_name}-{logical_id}"[:64]

    def _deploy_layer(self, logical_id: str, _properties: Any) -> None:
        self.resolver.refs[logical_id] = (
            f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:layer:{self._name(logical_id)}:1"
        )

    def _deploy_secret(self, logical_id: str, properties: Any) -> None:
        arn = self.cloud.client("secretsmanager").create_secret(
            Name=properties.get("Name", self._name(logical_id)),
            Description=properties.get("Description", ""),
            SecretString=properties["SecretString"],
            Tags=properties.get("Tags", []),
        )["ARN"]
        self.resolver.refs[logical_id] = arn

    def _deploy_topic(self, logical_id: str, _properties: Any) -> None:
        name = self._name(logical_id)
        arn = self.cloud.client("sns").create_topic(Name=name)["TopicArn"]
        self.resolver.refs[logical_id] = arn
        self.resolver.attributes[(logical_id, "TopicName")] = name

    def _deploy_subscription(self, _logical_id: str, properties: Any) -> None:
        # E-mail cannot be delivered here; the subscription is recorded all the same.
        self.cloud.client("sns").subscribe(
            TopicArn=properties["TopicArn"],
            Protocol=properties["Protocol"],
            Endpoint=properties["Endpoint"],
        )

    def _deploy_log_group(self, logical_id: str, properties: Any) -> None:
        name = properties.get("LogGroupName", f"/aws/lambda/{self._name(logical_id)}")
        logs = self.cloud.client("logs")
        logs.create_log_group(logGroupName=name)
        logs.put_retention_policy(
            logGroupName=name, retentionInDays=int(properties["RetentionInDays"])
        )
        self.resolver.refs[logical_id] = name
        self.resolver.attributes[(logical_id, "Arn")] = (
            f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{name}:*"
        )

    def _deploy_function(self, logical_id: str, _properties: Any) -> None:
        spec = self.functions[logical_id]
        name = self._name(logical_id)
        environment = {
            **{
                key: str(value)
                for key, value in self.resolver.value(dict(spec.environment)).items()
            },
            **self.environment_overrides.get(logical_id, {}),
        }
        arn = self.cloud.client("lambda").create_function(
            FunctionName=name,
            Runtime=spec.runtime,
            Role=ROLE_ARN,
            Handler=spec.handler,
            Code={"ZipFile": _placeholder_zip()},
            Timeout=spec.timeout_seconds,
            MemorySize=spec.memory_mb,
            Environment={"Variables": environment},
        )["FunctionArn"]
        self.cloud.runtime.register(
            FunctionWorker(
                name=name,
                handler=spec.handler,
                code_paths=[spec.code_uri, *self._layer_paths(spec)],
                environment=self._process_environment(spec, name, environment),
                timeout_seconds=spec.timeout_seconds,
                memory_mb=spec.memory_mb,
                log_sink=self.cloud.logs,
                function_arn=arn,
            )
        )
        self.resolver.refs[logical_id] = name
        self.resolver.attributes[(logical_id, "Arn")] = arn
        self.function_names[logical_id] = name

    def _layer_paths(self, spec: FunctionSpec) -> Iterator[Path]:
        for layer in spec.layers:
            yield self.template.layer_content(layer)

    def _process_environment(
        self, spec: FunctionSpec, name: str, environment: Mapping[str, str]
    ) -> dict[str, str]:
        """A Lambda process's environment: the template's variables, the runtime's own, and
        where this machine's stand-ins for AWS and Google live."""
        return {
            **environment,
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
            "_HANDLER": spec.handler,
            "GOOGLE_TOKEN_URL": self.cloud.google.token_url,
            "GOOGLE_TOKENINFO_URL": self.cloud.google.tokeninfo_url,
            "GOOGLE_HTTP_TIMEOUT_SECONDS": str(self.cloud._google_timeout),
            # Never the developer's own AWS profile: only the local cloud's fake credentials.
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            **self.cloud.client_environment(),
        }

    def _deploy_state_machine(self, logical_id: str, properties: Any) -> None:
        definition = Path(self.template.state_machine().definition_path).read_text()
        for name, value in properties.get("DefinitionSubstitutions", {}).items():
            definition = definition.replace("${" + name + "}", str(value))
        name = self._name(logical_id)
        arn = self.cloud.client("stepfunctions").create_state_machine(
            name=name, definition=definition, roleArn=ROLE_ARN, type=properties["Type"]
        )["stateMachineArn"]
        self.resolver.refs[logical_id] = arn
        self.resolver.attributes[(logical_id, "Name")] = name

    def _deploy_permission(self, logical_id: str, properties: Any) -> None:
        # Recorded only: moto does not check resource policies on invoke.
        self.cloud.client("lambda").add_permission(
            FunctionName=properties["FunctionName"],
            StatementId=logical_id,
            Action=properties["Action"],
            Principal=properties["Principal"],
            SourceAccount=properties["SourceAccount"],
        )

    def _deploy_rotation_schedule(self, _logical_id: str, properties: Any) -> None:
        fidelity.configure_rotation(
            self.cloud.secrets_backend(), properties["SecretId"], properties["RotationLambdaARN"]
        )

    def _deploy_alarm(self, logical_id: str, properties: Any) -> None:
        self.cloud.client("cloudwatch").put_metric_alarm(
            AlarmName=self._name(logical_id),
            **{key: value for key, value in properties.items() if key not in {"TreatMissingData"}},
            TreatMissingData=properties.get("TreatMissingData", "missing"),
        )


def ensure_lambda_role(iam: Any) -> str:
    """The role every local function runs as (moto checks that it exists and trusts Lambda)."""
    role_name = ROLE_ARN.rsplit("/", 1)[1]
    if role_name not in {role["RoleName"] for role in iam.list_roles()["Roles"]}:
        iam.create_role(
            RoleName=role_name,
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
        )
    return ROLE_ARN


def _depends_on(resource: Mapping[str, Any]) -> list[str]:
    depends = resource.get("DependsOn", [])
    return [depends] if isinstance(depends, str) else list(depends)


def _placeholder_zip() -> bytes:
    """moto wants a code bundle; the code that runs is the function's folder, as SAM builds it."""
    bundle = io.BytesIO()
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.writestr("README.txt", "Code runs from the function's CodeUri in a local worker.\n")
    return bundle.getvalue()

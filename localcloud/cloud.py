"""The whole stack on one machine: moto for AWS, warm worker processes for Lambda, an emulator for
Google, and a deployment made from template.yaml itself through the AWS APIs."""

import contextlib
import io
import json
import logging
import os
import re
import threading
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from graphlib import TopologicalSorter
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import urllib3
from moto.awslambda.models import LambdaFunction
from moto.backends import get_backend
from moto.server import ThreadedMotoServer

from localcloud import fidelity
from localcloud.clock import SimulatedClock
from localcloud.deployment import (
    ACCOUNT_ID,
    FAKE_CREDENTIALS,
    REGION,
    Deployment,
    check_port_free,
    client_environment,
    make_client,
)
from localcloud.google_emulator import GoogleEmulator, ServiceAccountKey
from localcloud.intrinsics import Resolver, TemplateError, references
from localcloud.lambda_runtime import FunctionWorker, LambdaRuntime
from localcloud.template import FunctionSpec, Template, load_template

ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/local-cloud"
IAM_KEYS_PATH = "/v1/projects/-/serviceAccounts/{}/keys"
"""IAM's service-account keys collection, {} for the account's e-mail (GOOGLE_IAM_URL after the
emulator's base URL): the key's own rotation creates, lists and deletes keys there."""
LogSink = Callable[[str, str], None]
__all__ = [
    "ACCOUNT_ID",
    "FAKE_CREDENTIALS",
    "REGION",
    "ROLE_ARN",
    "Deployment",
    "Invocation",
    "LocalCloud",
    "LogBook",
    "LogSink",
    "RotationRule",
    "check_parameter",
    "ensure_lambda_role",
]


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


@dataclass(frozen=True)
class RotationRule:
    """The schedule an AWS::SecretsManager::RotationSchedule gives a secret, which moto keeps
    nowhere: localcloud.scheduler fires RotateSecret every `period_seconds` of simulated time
    from `deployed_at`. AWS instead counts from the last rotation and starts each one at a
    random moment of the `window` (RotationRules.Duration) that follows."""

    secret_arn: str
    expression: str
    period_seconds: float
    window: str | None
    deployed_at: float
    """Simulated epoch seconds."""


@dataclass
class LogBook:
    """Every line a function printed, kept so tests can scan them and the demo can show them;
    listeners hear each line as it arrives (from the worker's log-pump thread)."""

    lines: list[tuple[str, str]] = field(default_factory=list)
    echo: LogSink | None = None
    _listeners: list[LogSink] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, function_name: str, line: str) -> None:
        with self._lock:
            self.lines.append((function_name, line))
            listeners = list(self._listeners)
        if self.echo is not None:
            self.echo(function_name, line)
        for listener in listeners:
            listener(function_name, line)

    def subscribe(self, listener: LogSink) -> Callable[[], None]:
        """Calls `listener(function name, line)` for every later line, on the thread that
        forwards it (so it must be quick and thread-safe); returns the unsubscribe call."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return unsubscribe

    def text(self) -> str:
        with self._lock:
            return "\n".join(line for _, line in self.lines)


class LocalCloud:
    """Start it, deploy the template, then use `client(...)` as you would against AWS."""

    def __init__(
        self,
        *,
        sleep_retries: bool = True,
        google_timeout_seconds: float = 5.0,
        port: int = 0,
        retry_waits_on_clock: bool = False,
    ) -> None:
        """`port` 0 lets the system choose moto's port; another is used as it is (or refused
        with OSError when taken). `retry_waits_on_clock`: Retry waits that are not slept pass on
        the simulated clock instead (the soak: a rotation takes as long as on AWS)."""
        self.clock = SimulatedClock()
        """Simulated time for the Lambda workers, Google and Secrets Manager's dates (the rest of
        moto keeps real time)."""
        self.rotation_rules: list[RotationRule] = []
        self.google = GoogleEmulator(clock=self.clock)
        self.logs = LogBook()
        self.invocations: list[Invocation] = []
        self.runtime = LambdaRuntime()
        self.corrections = fidelity.apply()
        self.corrections.sleep_retries = sleep_retries
        self._retry_waits_on_clock = retry_waits_on_clock
        self._google_timeout = google_timeout_seconds
        self._port = port
        self._server: ThreadedMotoServer | None = None
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()
        self.endpoint = ""
        self.deployment: Deployment | None = None
        # Kept after each deploy, by stack name, so that an extra function can be deployed into
        # a stack with its parameters and resources (deploy_extra_function).
        self._deployers: dict[str, _Deployer] = {}

    def start(self) -> Self:
        # moto's server logs every request; the demo's output is the rotation, not HTTP.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        # moto's ASL interpreter logs every caught failure at ERROR, Catch-handled ones included.
        logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)
        if self._port:
            # ThreadedMotoServer waits forever for a server that failed to bind: fail here.
            check_port_free(self._port)
        self.google.start()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self._port, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        # Google's STS verifies an AWS caller by sending its signed GetCallerIdentity to AWS.
        self.google.aws_endpoint_url = self.endpoint
        self._clients.clear()
        # moto's ASL interpreter reaches Lambda and SNS at localhost:$MOTO_PORT.
        os.environ["MOTO_PORT"] = str(port)
        urllib3.PoolManager().request(
            "POST",
            f"{self.endpoint}/moto-api/config",
            json={"stepfunctions": {"execute_state_machine": True}},
        )
        self.corrections.dispatch = self._dispatch
        self.corrections.clock = self.clock
        self.corrections.retry_clock = self.clock if self._retry_waits_on_clock else None
        return self

    def stop(self) -> None:
        self.runtime.stop_all()
        if self._server is not None:
            self._server.stop()
        self.google.stop()
        self.corrections.dispatch = None
        self.corrections.clock = None
        self.corrections.retry_clock = None

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
        return client_environment(self.endpoint)

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
        return make_client(self.endpoint, service, config)

    def deploy(
        self,
        parameters: Mapping[str, str] | None = None,
        stack_name: str = "google-token-rotation",
        environment_overrides: Mapping[str, Mapping[str, str]] | None = None,
        template: Template | None = None,
    ) -> Deployment:
        """Deploys template.yaml (or `template`, for tests of the deployer).
        `environment_overrides` (logical id → variables) lets tests shorten waits, e.g. the
        entry Lambda's DEADLINE_MARGIN_SECONDS."""
        ensure_lambda_role(self.client("iam"))
        deployer = _Deployer(
            self,
            template or load_template(),
            stack_name,
            parameters or {},
            environment_overrides or {},
        )
        self.deployment = deployer.deploy()
        self._deployers[stack_name] = deployer
        return self.deployment

    def deploy_extra_function(self, deployment: Deployment, spec: FunctionSpec) -> str:
        """Deploys a function the template does not declare (a benchmark's fixture, say) into
        a deployed stack, exactly as the stack's own functions were deployed: its variables
        resolved against the stack's parameters and resources (so a SAM Globals `!Ref` means the
        same), its layers the template's, a warm worker with the local cloud's process
        environment, named `<stack>-<logical id>`. It joins `deployment.functions` and
        `deployment.refs` as a resource of the stack would. Returns its ARN."""
        deployer = self._deployers.get(deployment.stack_name)
        # The deploy's own mapping, not a namesake's: a stack of another cloud, or one this cloud
        # has since deployed again under the same name, would get a function it never sees.
        if deployer is None or deployer.function_names is not deployment.functions:
            raise ValueError(f"stack {deployment.stack_name!r} was not deployed on this cloud")
        if spec.logical_id in deployer.resolver.refs:
            raise ValueError(f"stack {deployment.stack_name!r} has a {spec.logical_id} already")
        deployer.functions[spec.logical_id] = spec
        deployer._deploy_function(spec.logical_id, {})
        return deployer.resolver.attributes[(spec.logical_id, "Arn")]

    def store_service_account_key(self, key: ServiceAccountKey) -> None:
        """What a user does after deploying: put the downloaded key file into its secret."""
        assert self.deployment is not None
        self.client("secretsmanager").put_secret_value(
            SecretId=self.deployment.key_secret_arn,
            SecretString=json.dumps(key.key_file(GoogleEmulator.GOOGLE_TOKEN_AUDIENCE)),
        )
        # What `make google-setup` prints for a key that renews itself: the account manages
        # its own keys (roles/iam.serviceAccountKeyAdmin on itself).
        self.google.grant_key_admin(key.client_email, f"serviceAccount:{key.client_email}")

    def prewarm(self) -> dict[str, dict[str, object]]:
        """Starts one warm sandbox of every deployed function at once, as provisioned
        concurrency keeps them; returns the init errors by function name (none: {})."""
        assert self.deployment is not None
        names = list(self.deployment.functions.values())
        with ThreadPoolExecutor(max_workers=len(names) or 1) as pool:
            errors = pool.map(lambda name: self.runtime.worker(name).prewarm(), names)
            return {name: error for name, error in zip(names, errors, strict=True) if error}

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
        # As CloudFormation: a parameter without a Default must be given a value.
        missing = [
            name
            for name, spec in document.get("Parameters", {}).items()
            if "Default" not in spec and name not in overrides
        ]
        if missing:
            raise TemplateError(
                f"parameters without a default need a value: {', '.join(missing)} "
                "(pass them to deploy)"
            )
        for name, spec in document.get("Parameters", {}).items():
            check_parameter(name, spec, parameters[name])
        self.resolver = Resolver(
            parameters=parameters,
            pseudo={
                "AWS::Region": REGION,
                "AWS::AccountId": ACCOUNT_ID,
                "AWS::Partition": "aws",
                "AWS::StackName": stack_name,
            },
            conditions=document.get("Conditions", {}),
            mappings=document.get("Mappings", {}),
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
            "AWS::Scheduler::ScheduleGroup": self._deploy_schedule_group,
            "AWS::Scheduler::Schedule": self._deploy_schedule,
            "AWS::IAM::Role": self._deploy_role,
            "AWS::IAM::Policy": self._deploy_policy,
        }
        for logical_id in order:
            resource = resources[logical_id]
            if "Condition" in resource and not self.resolver.condition(resource["Condition"]):
                continue
            create = creators.get(resource["Type"])
            if create is None:
                raise TemplateError(f"{logical_id}: cannot deploy {resource['Type']} locally")
            create(logical_id, self.resolver.value(resource.get("Properties", {})))
        self._record_stack()
        return Deployment(
            self.stack_name, self.resolver.refs, self.resolver.attributes, self.function_names
        )

    def _record_stack(self) -> None:
        """What CloudFormation's DescribeStacks answers for the stack: its parameters as deployed
        and the outputs whose conditions hold, resolved. moto's CloudFormation keeps it as a stack
        with no resources of its own (the deploy made them through their APIs), so that boto3 and
        `aws cloudformation describe-stacks` read it as from AWS; a redeploy replaces it."""
        document = self.template.document
        outputs = {
            name: {
                "Value": str(self.resolver.value(output["Value"])),
                "Description": " ".join(str(output.get("Description", "")).split()),
            }
            for name, output in document.get("Outputs", {}).items()
            if "Condition" not in output or self.resolver.condition(output["Condition"])
        }
        record = {
            "Description": " ".join(str(document.get("Description", "")).split()),
            "Parameters": {
                name: {"Type": "String", "Default": value}
                for name, value in self.resolver.parameters.items()
            },
            "Resources": {},
            "Outputs": outputs,
        }
        stacks = get_backend("cloudformation")[ACCOUNT_ID][REGION]
        for stack in list(stacks.stacks.values()):
            if stack.name == self.stack_name:
                stacks.delete_stack(stack.stack_id)
        stacks.create_stack(name=self.stack_name, template=json.dumps(record), parameters={})

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
        # Without KmsKeyId, Secrets Manager encrypts with aws/secretsmanager. DeletionPolicy and
        # UpdateReplacePolicy apply when a stack is deleted or updated, which never happens here.
        arn = self.cloud.client("secretsmanager").create_secret(
            Name=properties.get("Name", self._name(logical_id)),
            Description=properties.get("Description", ""),
            SecretString=properties["SecretString"],
            Tags=properties.get("Tags", []),
            **({"KmsKeyId": properties["KmsKeyId"]} if "KmsKeyId" in properties else {}),
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
            Role=self._function_role(spec),
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
                clock=self.cloud.clock,
            )
        )
        self.resolver.refs[logical_id] = name
        self.resolver.attributes[(logical_id, "Arn")] = arn
        self.function_names[logical_id] = name

    def _function_role(self, spec: FunctionSpec) -> str:
        """The role SAM makes for a function that names none, `<logical id>Role`, trusting Lambda
        and holding the function's policy statements; its ARN is the function's Role and the
        template's `!GetAtt <logical id>Role.Arn`. The worker's own calls still use the local
        cloud's credentials: moto checks no permission."""
        logical_id = f"{spec.logical_id}Role"
        iam = self.cloud.client("iam")
        name = self._name(logical_id)
        role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=_LAMBDA_TRUST)["Role"]
        for index, policy in enumerate(self.resolver.value(list(spec.policies))):
            iam.put_role_policy(
                RoleName=name,
                PolicyName=f"{logical_id}Policy{index}",
                PolicyDocument=_policy_text({"Version": "2012-10-17", **policy}),
            )
        self.resolver.refs[logical_id] = name
        self.resolver.attributes[(logical_id, "Arn")] = role["Arn"]
        self.resolver.attributes[(logical_id, "RoleId")] = role["RoleId"]
        arn: str = role["Arn"]
        return arn

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
            "GOOGLE_IAM_CREDENTIALS_URL": self.cloud.google.generate_access_token_url("{}"),
            "GOOGLE_STS_URL": self.cloud.google.sts_url,
            "GOOGLE_CERTS_URL": self.cloud.google.certs_url,
            "GOOGLE_IAM_URL": self.cloud.google.base_url + IAM_KEYS_PATH,
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
            **({"SourceArn": properties["SourceArn"]} if "SourceArn" in properties else {}),
        )

    def _deploy_rotation_schedule(self, logical_id: str, properties: Any) -> None:
        """Rotation switched on with its rules, fired by localcloud.scheduler. `!Ref` of the
        resource is the secret's ARN, as CloudFormation answers; that also makes a secret the
        stack did not create (ServiceAccountKeySecretArn) one of the stack's for the scheduler."""
        rules = dict(properties.get("RotationRules", {}))
        if "AutomaticallyAfterDays" in rules:
            # CloudFormation hands a Number parameter's `!Ref` over as the integer the API takes.
            rules["AutomaticallyAfterDays"] = int(rules["AutomaticallyAfterDays"])
        expression, period = _rotation_period(logical_id, rules)
        fidelity.configure_rotation(
            self.cloud.secrets_backend(),
            properties["SecretId"],
            properties["RotationLambdaARN"],
            rules,
        )
        self.cloud.rotation_rules.append(
            RotationRule(
                secret_arn=properties["SecretId"],
                expression=expression,
                period_seconds=period,
                window=rules.get("Duration"),
                deployed_at=self.cloud.clock.now(),
            )
        )
        self.resolver.refs[logical_id] = properties["SecretId"]

    def _deploy_alarm(self, logical_id: str, properties: Any) -> None:
        self.cloud.client("cloudwatch").put_metric_alarm(
            AlarmName=self._name(logical_id),
            **{key: value for key, value in properties.items() if key not in {"TreatMissingData"}},
            TreatMissingData=properties.get("TreatMissingData", "missing"),
        )

    def _deploy_schedule_group(self, logical_id: str, properties: Any) -> None:
        name = properties.get("Name", self._name(logical_id))
        tags = properties.get("Tags")
        arn = self.cloud.client("scheduler").create_schedule_group(
            Name=name, **({} if tags is None else {"Tags": tags})
        )["ScheduleGroupArn"]
        self.resolver.refs[logical_id] = name
        self.resolver.attributes[(logical_id, "Arn")] = arn

    def _deploy_schedule(self, logical_id: str, properties: Any) -> None:
        """Stored by moto, which never fires it: localcloud.scheduler does. The properties are
        CreateSchedule's parameters (StartDate and EndDate as ISO 8601 text, which botocore
        takes); without Name, `<stack>-<logical id>` (CloudFormation adds a random suffix)."""
        name = properties.get("Name", self._name(logical_id))
        arn = self.cloud.client("scheduler").create_schedule(
            **{key: value for key, value in properties.items() if key != "Name"}, Name=name
        )["ScheduleArn"]
        self.resolver.refs[logical_id] = name
        self.resolver.attributes[(logical_id, "Arn")] = arn

    def _deploy_role(self, logical_id: str, properties: Any) -> None:
        # Recorded only, as the other policies: moto checks no permission.
        iam = self.cloud.client("iam")
        name = properties.get("RoleName", self._name(logical_id))
        optional = {
            key: properties[key]
            for key in ("Path", "Description", "MaxSessionDuration", "Tags")
            if key in properties
        }
        role = iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=_policy_text(properties["AssumeRolePolicyDocument"]),
            **optional,
        )["Role"]
        for policy in properties.get("Policies", []):
            iam.put_role_policy(
                RoleName=name,
                PolicyName=policy["PolicyName"],
                PolicyDocument=_policy_text(policy["PolicyDocument"]),
            )
        for policy_arn in properties.get("ManagedPolicyArns", []):
            iam.attach_role_policy(RoleName=name, PolicyArn=policy_arn)
        self.resolver.refs[logical_id] = name
        self.resolver.attributes[(logical_id, "Arn")] = role["Arn"]
        self.resolver.attributes[(logical_id, "RoleId")] = role["RoleId"]

    def _deploy_policy(self, logical_id: str, properties: Any) -> None:
        """An inline policy of each role it names (users and groups have none here)."""
        iam = self.cloud.client("iam")
        for role in properties.get("Roles", []):
            iam.put_role_policy(
                RoleName=role,
                PolicyName=properties["PolicyName"],
                PolicyDocument=_policy_text(properties["PolicyDocument"]),
            )
        self.resolver.refs[logical_id] = self._name(logical_id)


def _rotation_period(logical_id: str, rules: Mapping[str, Any]) -> tuple[str, float]:
    """RotationRules as (expression, period in seconds): rate(N hours|days) or
    AutomaticallyAfterDays; Secrets Manager's cron() schedules cannot be fired locally."""
    expression = rules.get("ScheduleExpression")
    if expression is None:
        if "AutomaticallyAfterDays" not in rules:
            raise TemplateError(f"{logical_id}: RotationRules has no schedule")
        days = int(rules["AutomaticallyAfterDays"])
        return f"AutomaticallyAfterDays={days}", days * 86400.0
    hours = fidelity.rate_hours(str(expression))
    if hours is None:
        raise TemplateError(
            f"{logical_id}: the local cloud fires rate(N hours|days) rotation schedules only, "
            f"not {expression!r}"
        )
    return str(expression), hours * 3600.0


def _policy_text(document: Any) -> str:
    """A policy document as IAM takes it: JSON text (templates give it as a mapping)."""
    return document if isinstance(document, str) else json.dumps(document)


_LAMBDA_TRUST = json.dumps(
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
)


def ensure_lambda_role(iam: Any) -> str:
    """The role the local state machine and tests' own functions run as (moto checks that it
    exists and trusts Lambda)."""
    role_name = ROLE_ARN.rsplit("/", 1)[1]
    # Asked by name: ListRoles answers 100 roles a page, and a process's stacks make more.
    try:
        iam.get_role(RoleName=role_name)
    except iam.exceptions.NoSuchEntityException:
        iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=_LAMBDA_TRUST)
    return ROLE_ARN


def check_parameter(name: str, spec: Mapping[str, Any], value: str) -> None:
    """CloudFormation's parameter constraints: AllowedValues, AllowedPattern (the whole value),
    and MinValue/MaxValue of a Number."""
    allowed = spec.get("AllowedValues")
    if allowed is not None and value not in {str(choice) for choice in allowed}:
        raise TemplateError(f"parameter {name}: {value!r} is not one of {allowed}")
    pattern = spec.get("AllowedPattern")
    if pattern is not None and re.fullmatch(pattern, value) is None:
        raise TemplateError(f"parameter {name}: {value!r} does not match {pattern}")
    if spec.get("Type") == "Number":
        try:
            number = float(value)
        except ValueError:
            raise TemplateError(f"parameter {name}: {value!r} is not a number") from None
        low, high = spec.get("MinValue"), spec.get("MaxValue")
        if (low is not None and number < float(low)) or (high is not None and number > float(high)):
            raise TemplateError(f"parameter {name}: {value} is outside [{low}, {high}]")


def _depends_on(resource: Mapping[str, Any]) -> list[str]:
    depends = resource.get("DependsOn", [])
    return [depends] if isinstance(depends, str) else list(depends)


def _placeholder_zip() -> bytes:
    """moto wants a code bundle; the code that runs is the function's folder, as SAM builds it."""
    bundle = io.BytesIO()
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.writestr("README.txt", "Code runs from the function's CodeUri in a local worker.\n")
    return bundle.getvalue()
